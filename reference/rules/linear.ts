/** docs/spec.md §3, `linear`: S' = S + k vᵀ (no gates). Chunked: docs/spec.md §5 with no decay. */
import type { Dims, TokenInputs } from '../types.js';
import { decayChunked } from './chunk.js';
import { checkChunk, checkSequence, readOut } from './common.js';
import type { BuiltinRule, HeadSequence } from './types.js';

/** S ← S + k vᵀ, with k at k[kOff..], v at v[vOff..]. */
function linearToken(S: Float64Array, dk: number, dv: number, k: Float64Array, kOff: number, v: Float64Array, vOff: number): void {
  for (let i = 0; i < dk; i++) {
    const ki = k[kOff + i];
    const row = i * dv;
    for (let j = 0; j < dv; j++) S[row + j] += ki * v[vOff + j];
  }
}

export const linear: BuiltinRule = {
  name: 'linear',
  inputs: [
    { name: 'k', width: 'dk', range: 'normalized' },
    { name: 'v', width: 'dv', range: 'free' },
  ],
  readLinear: true,

  step(S: Float64Array, x: TokenInputs, { dk, dv }: Dims): void {
    linearToken(S, dk, dv, x.k as Float64Array, 0, x.v as Float64Array, 0);
  },

  read: readOut,

  recurrent(seq: HeadSequence, S: Float64Array): Float64Array {
    checkSequence(linear, seq, S);
    const { n, dk, dv, q } = seq;
    const { k, v } = seq.inputs;
    const o = new Float64Array(n * dv);
    for (let t = 0; t < n; t++) {
      linearToken(S, dk, dv, k, t * dk, v, t * dv);
      readOut(S, q.subarray(t * dk, (t + 1) * dk), seq, o.subarray(t * dv, (t + 1) * dv));
    }
    return o;
  },

  chunked(seq: HeadSequence, S: Float64Array, C: number): Float64Array {
    checkChunk(C);
    checkSequence(linear, seq, S);
    return decayChunked(seq, S, C, null);
  },
};
