/** docs/spec.md §3, `linear`: S' = S + k vᵀ (no gates). Chunked: docs/spec.md §5 with no decay. */
import type { Dims, TokenInputs } from '../types.js';
import { decayChunked } from './chunk.js';
import { checkChunk, checkSequence, readOut, stepThrough } from './common.js';
import type { BuiltinRule, HeadSequence } from './types.js';

export const linear: BuiltinRule = {
  name: 'linear',
  inputs: [
    { name: 'k', width: 'dk', range: 'normalized' },
    { name: 'v', width: 'dv', range: 'free' },
  ],
  readLinear: true,

  /** S ← S + k vᵀ. */
  step(S: Float64Array, x: TokenInputs, { dk, dv }: Dims): void {
    const k = x.k as Float64Array, v = x.v as Float64Array;
    for (let i = 0; i < dk; i++) {
      const ki = k[i], row = i * dv;
      for (let j = 0; j < dv; j++) S[row + j] += ki * v[j];
    }
  },

  read: readOut,

  recurrent: (seq: HeadSequence, S: Float64Array): Float64Array => stepThrough(linear, seq, S),

  chunked(seq: HeadSequence, S: Float64Array, C: number): Float64Array {
    checkChunk(C);
    checkSequence(linear, seq, S);
    return decayChunked(seq, S, C, null);
  },
};
