/** docs/spec.md §3, `decay` (RetNet, simple GLA, Mamba2-style): S' = α S + k vᵀ, α = e^g, g ≤ 0 scalar. */
import type { Dims, TokenInputs } from '../types.js';
import { decayChunked } from './chunk.js';
import { checkChunk, checkSequence, readOut, stepThrough } from './common.js';
import type { BuiltinRule, HeadSequence } from './types.js';

export const decay: BuiltinRule = {
  name: 'decay',
  inputs: [
    { name: 'k', width: 'dk', range: 'normalized' },
    { name: 'v', width: 'dv', range: 'free' },
    { name: 'g', width: 'scalar', range: 'logdecay' },
  ],
  readLinear: true,

  /** S ← α S + k vᵀ. */
  step(S: Float64Array, x: TokenInputs, { dk, dv }: Dims): void {
    const k = x.k as Float64Array, v = x.v as Float64Array;
    const alpha = Math.exp(x.g as number);
    for (let i = 0; i < dk; i++) {
      const ki = k[i], row = i * dv;
      for (let j = 0; j < dv; j++) S[row + j] = alpha * S[row + j] + ki * v[j];
    }
  },

  read: readOut,

  recurrent: (seq: HeadSequence, S: Float64Array): Float64Array => stepThrough(decay, seq, S),

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
