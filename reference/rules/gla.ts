/** docs/spec.md §3, `gla`: S' = diag(α) S + k vᵀ, α = e^g ∈ (0,1]^dk, one decay per key channel. */
import type { Dims, TokenInputs } from '../types.js';
import { decayChunked } from './chunk.js';
import { checkChunk, checkSequence, readOut, stepThrough } from './common.js';
import type { BuiltinRule, HeadSequence } from './types.js';

export const gla: BuiltinRule = {
  name: 'gla',
  inputs: [
    { name: 'k', width: 'dk', range: 'normalized' },
    { name: 'v', width: 'dv', range: 'free' },
    { name: 'g', width: 'dk', range: 'logdecay' },
  ],
  readLinear: true,

  /** S ← diag(e^g) S + k vᵀ: row i of S decays by e^{g[i]}. */
  step(S: Float64Array, x: TokenInputs, { dk, dv }: Dims): void {
    const k = x.k as Float64Array, v = x.v as Float64Array, g = x.g as Float64Array;
    for (let i = 0; i < dk; i++) {
      const alpha = Math.exp(g[i]), ki = k[i], row = i * dv;
      for (let j = 0; j < dv; j++) S[row + j] = alpha * S[row + j] + ki * v[j];
    }
  },

  read: readOut,

  recurrent: (seq: HeadSequence, S: Float64Array): Float64Array => stepThrough(gla, seq, S),

  chunked(seq: HeadSequence, S: Float64Array, C: number): Float64Array {
    checkChunk(C);
    checkSequence(gla, seq, S);
    return decayChunked(seq, S, C, seq.inputs.g);
  },
};
