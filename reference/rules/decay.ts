/** docs/spec.md §3, `decay` (RetNet, simple GLA, Mamba2-style): S' = α S + k vᵀ, α = e^g, g ≤ 0 scalar. */
import type { Dims, TokenInputs } from '../types.js';
import { decayChunked } from './chunk.js';
import { checkChunk, checkSequence, readOut } from './common.js';
import type { BuiltinRule, HeadSequence } from './types.js';

/** S ← α S + k vᵀ. */
function decayToken(S: Float64Array, dk: number, dv: number, alpha: number, k: Float64Array, kOff: number, v: Float64Array, vOff: number): void {
  for (let i = 0; i < dk; i++) {
    const ki = k[kOff + i];
    const row = i * dv;
    for (let j = 0; j < dv; j++) S[row + j] = alpha * S[row + j] + ki * v[vOff + j];
  }
}

export const decay: BuiltinRule = {
  name: 'decay',
  inputs: [
    { name: 'k', width: 'dk', range: 'normalized' },
    { name: 'v', width: 'dv', range: 'free' },
    { name: 'g', width: 'scalar', range: 'logdecay' },
  ],
  readLinear: true,

  step(S: Float64Array, x: TokenInputs, { dk, dv }: Dims): void {
    decayToken(S, dk, dv, Math.exp(x.g as number), x.k as Float64Array, 0, x.v as Float64Array, 0);
  },

  read: readOut,

  recurrent(seq: HeadSequence, S: Float64Array): Float64Array {
    checkSequence(decay, seq, S);
    const { n, dk, dv, q } = seq;
    const { k, v, g } = seq.inputs;
    const o = new Float64Array(n * dv);
    for (let t = 0; t < n; t++) {
      decayToken(S, dk, dv, Math.exp(g[t]), k, t * dk, v, t * dv);
      readOut(S, q.subarray(t * dk, (t + 1) * dk), seq, o.subarray(t * dv, (t + 1) * dv));
    }
    return o;
  },

  chunked(seq: HeadSequence, S: Float64Array, C: number): Float64Array {
    checkChunk(C);
    checkSequence(decay, seq, S);
    // The scalar decay is the same on every key channel.
    const { n, dk } = seq;
    const gk = new Float64Array(n * dk);
    for (let t = 0; t < n; t++) gk.fill(seq.inputs.g[t], t * dk, (t + 1) * dk);
    return decayChunked(seq, S, C, gk);
  },
};
