/**
 * docs/spec.md §3, `gated-delta` (Gated DeltaNet): S̄ = α S;  S' = S̄ + β k (v − S̄ᵀk)ᵀ, α = e^g, β ∈ (0,1).
 * Chunked: the UT transform of docs/spec.md §5 with the decays.
 *
 * This is the rule the benchmark (bench/reference.ts) measures, so its token step is fused:
 * the decay is folded into the two passes over S instead of being a pass of its own, and the
 * read-out o = S'ᵀq rides along the second pass.
 */
import type { Dims, TokenInputs } from '../types.js';
import { deltaChunked } from './chunk.js';
import { checkChunk, checkSequence, readOut } from './common.js';
import type { BuiltinRule, HeadSequence } from './types.js';

/**
 * One token: S ← α S + k uᵀ with u = β (v − α Sᵀk)   (α Sᵀk = S̄ᵀk, so S̄ is never formed),
 * then, when q is given, o = Sᵀq written to o[oOff..]. `u` is scratch of length dv.
 *
 * Both passes walk S two rows at a time: each u[j] (and o[j]) is then loaded and stored once
 * per pair of rows instead of once per row, which is what makes this loop ~1.5x faster than
 * the one-row version in V8 (measured, docs/perf.md). An odd last row is done on its own.
 */
function gatedDeltaToken(
  S: Float64Array, dk: number, dv: number, alpha: number, beta: number,
  k: Float64Array, kOff: number, v: Float64Array, vOff: number,
  q: Float64Array | null, qOff: number, o: Float64Array, oOff: number, u: Float64Array,
): void {
  const pairs = dk - (dk % 2);

  // Pass 1: u = Sᵀk = Σ_i k[i] S[i, :], on the undecayed state.
  u.fill(0);
  for (let i = 0; i < pairs; i += 2) {
    const k0 = k[kOff + i], k1 = k[kOff + i + 1];
    const r0 = i * dv, r1 = r0 + dv;
    for (let j = 0; j < dv; j++) u[j] += S[r0 + j] * k0 + S[r1 + j] * k1;
  }
  if (pairs < dk) {
    const ki = k[kOff + pairs], row = pairs * dv;
    for (let j = 0; j < dv; j++) u[j] += S[row + j] * ki;
  }

  // u = β (v − α Sᵀk): the correction towards v, against the decayed state.
  for (let j = 0; j < dv; j++) u[j] = beta * (v[vOff + j] - alpha * u[j]);

  // Pass 2: S[i, :] = α S[i, :] + k[i] u, and, with a query, o = Σ_i q[i] S[i, :] from the fresh rows.
  // Without a query (`step`, whose caller reads out separately) only the update runs.
  if (q !== null) for (let j = 0; j < dv; j++) o[oOff + j] = 0;
  for (let i = 0; i < pairs; i += 2) {
    const k0 = k[kOff + i], k1 = k[kOff + i + 1];
    const r0 = i * dv, r1 = r0 + dv;
    if (q !== null) {
      const q0 = q[qOff + i], q1 = q[qOff + i + 1];
      for (let j = 0; j < dv; j++) {
        const uj = u[j];
        const s0 = alpha * S[r0 + j] + k0 * uj;
        const s1 = alpha * S[r1 + j] + k1 * uj;
        S[r0 + j] = s0;
        S[r1 + j] = s1;
        o[oOff + j] += s0 * q0 + s1 * q1;
      }
    } else {
      for (let j = 0; j < dv; j++) {
        S[r0 + j] = alpha * S[r0 + j] + k0 * u[j];
        S[r1 + j] = alpha * S[r1 + j] + k1 * u[j];
      }
    }
  }
  if (pairs < dk) {
    const ki = k[kOff + pairs], row = pairs * dv;
    for (let j = 0; j < dv; j++) S[row + j] = alpha * S[row + j] + ki * u[j];
    if (q !== null) {
      const qi = q[qOff + pairs];
      for (let j = 0; j < dv; j++) o[oOff + j] += S[row + j] * qi;
    }
  }
}

export const gatedDelta: BuiltinRule = {
  name: 'gated-delta',
  inputs: [
    { name: 'k', width: 'dk', range: 'normalized' },
    { name: 'v', width: 'dv', range: 'free' },
    { name: 'g', width: 'scalar', range: 'logdecay' },
    { name: 'beta', width: 'scalar', range: 'unit' },
  ],
  readLinear: true,

  step(S: Float64Array, x: TokenInputs, { dk, dv }: Dims): void {
    const u = new Float64Array(dv);
    gatedDeltaToken(S, dk, dv, Math.exp(x.g as number), x.beta as number, x.k as Float64Array, 0, x.v as Float64Array, 0, null, 0, u, 0, u);
  },

  read: readOut,

  recurrent(seq: HeadSequence, S: Float64Array): Float64Array {
    checkSequence(gatedDelta, seq, S);
    const { n, dk, dv, q } = seq;
    const { k, v, g, beta } = seq.inputs;
    const o = new Float64Array(n * dv);
    const u = new Float64Array(dv); // reused: no allocation per token
    for (let t = 0; t < n; t++)
      gatedDeltaToken(S, dk, dv, Math.exp(g[t]), beta[t], k, t * dk, v, t * dv, q, t * dk, o, t * dv, u);
    return o;
  },

  chunked(seq: HeadSequence, S: Float64Array, C: number): Float64Array {
    checkChunk(C);
    checkSequence(gatedDelta, seq, S);
    return deltaChunked(seq, S, C, seq.inputs.g);
  },
};
