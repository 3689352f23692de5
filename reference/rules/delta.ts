/** docs/spec.md §3, `delta` (DeltaNet): S' = S + β k (v − Sᵀk)ᵀ, β ∈ (0,1). Chunked: the UT transform. */
import type { Dims, TokenInputs } from '../types.js';
import { deltaChunked } from './chunk.js';
import { checkChunk, checkSequence, readOut, stepThrough } from './common.js';
import type { BuiltinRule, HeadSequence } from './types.js';

export const delta: BuiltinRule = {
  name: 'delta',
  inputs: [
    { name: 'k', width: 'dk', range: 'normalized' },
    { name: 'v', width: 'dv', range: 'free' },
    { name: 'beta', width: 'scalar', range: 'unit' },
  ],
  readLinear: true,

  /** S ← S + k uᵀ with u = β (v − Sᵀk). */
  step(S: Float64Array, x: TokenInputs, { dk, dv }: Dims): void {
    const k = x.k as Float64Array, v = x.v as Float64Array;
    const beta = x.beta as number;
    // u = Sᵀk: what the memory currently returns for key k.
    const u = new Float64Array(dv);
    for (let i = 0; i < dk; i++) {
      const ki = k[i], row = i * dv;
      for (let j = 0; j < dv; j++) u[j] += S[row + j] * ki;
    }
    // u = β (v − Sᵀk): the correction towards v.
    for (let j = 0; j < dv; j++) u[j] = beta * (v[j] - u[j]);
    for (let i = 0; i < dk; i++) {
      const ki = k[i], row = i * dv;
      for (let j = 0; j < dv; j++) S[row + j] += ki * u[j];
    }
  },

  read: readOut,

  recurrent: (seq: HeadSequence, S: Float64Array): Float64Array => stepThrough(delta, seq, S),

  chunked(seq: HeadSequence, S: Float64Array, C: number): Float64Array {
    checkChunk(C);
    checkSequence(delta, seq, S);
    return deltaChunked(seq, S, C, null);
  },
};
