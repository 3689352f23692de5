/** docs/spec.md §3, `delta` (DeltaNet): S' = S + β k (v − Sᵀk)ᵀ, β ∈ (0,1). Chunked: the UT transform. */
import type { Dims, TokenInputs } from '../types.js';
import { deltaChunked } from './chunk.js';
import { checkChunk, checkSequence, readOut } from './common.js';
import type { BuiltinRule, HeadSequence } from './types.js';

/** S ← S + k uᵀ with u = β (v − Sᵀk); `u` is scratch of length dv. */
function deltaToken(S: Float64Array, dk: number, dv: number, beta: number, k: Float64Array, kOff: number, v: Float64Array, vOff: number, u: Float64Array): void {
  // u = Sᵀk: what the memory currently returns for key k.
  u.fill(0);
  for (let i = 0; i < dk; i++) {
    const ki = k[kOff + i];
    const row = i * dv;
    for (let j = 0; j < dv; j++) u[j] += S[row + j] * ki;
  }
  // u = β (v − Sᵀk): the correction towards v.
  for (let j = 0; j < dv; j++) u[j] = beta * (v[vOff + j] - u[j]);
  for (let i = 0; i < dk; i++) {
    const ki = k[kOff + i];
    const row = i * dv;
    for (let j = 0; j < dv; j++) S[row + j] += ki * u[j];
  }
}

export const delta: BuiltinRule = {
  name: 'delta',
  inputs: [
    { name: 'k', width: 'dk', range: 'normalized' },
    { name: 'v', width: 'dv', range: 'free' },
    { name: 'beta', width: 'scalar', range: 'unit' },
  ],
  readLinear: true,

  step(S: Float64Array, x: TokenInputs, { dk, dv }: Dims): void {
    deltaToken(S, dk, dv, x.beta as number, x.k as Float64Array, 0, x.v as Float64Array, 0, new Float64Array(dv));
  },

  read: readOut,

  recurrent(seq: HeadSequence, S: Float64Array): Float64Array {
    checkSequence(delta, seq, S);
    const { n, dk, dv, q } = seq;
    const { k, v, beta } = seq.inputs;
    const o = new Float64Array(n * dv);
    const u = new Float64Array(dv);
    for (let t = 0; t < n; t++) {
      deltaToken(S, dk, dv, beta[t], k, t * dk, v, t * dv, u);
      readOut(S, q.subarray(t * dk, (t + 1) * dk), seq, o.subarray(t * dv, (t + 1) * dv));
    }
    return o;
  },

  chunked(seq: HeadSequence, S: Float64Array, C: number): Float64Array {
    checkChunk(C);
    checkSequence(delta, seq, S);
    return deltaChunked(seq, S, C, null);
  },
};
