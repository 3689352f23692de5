/** docs/spec.md §3, `gla`: S' = diag(α) S + k vᵀ, α = e^g ∈ (0,1]^dk, one decay per key channel. */
import type { Dims, TokenInputs } from '../types.js';
import { decayChunked } from './chunk.js';
import { checkChunk, checkSequence, readOut } from './common.js';
import type { BuiltinRule, HeadSequence } from './types.js';

/** S ← diag(e^g) S + k vᵀ: row i of S decays by e^{g[i]}. */
function glaToken(S: Float64Array, dk: number, dv: number, g: Float64Array, gOff: number, k: Float64Array, kOff: number, v: Float64Array, vOff: number): void {
  for (let i = 0; i < dk; i++) {
    const alpha = Math.exp(g[gOff + i]);
    const ki = k[kOff + i];
    const row = i * dv;
    for (let j = 0; j < dv; j++) S[row + j] = alpha * S[row + j] + ki * v[vOff + j];
  }
}

export const gla: BuiltinRule = {
  name: 'gla',
  inputs: [
    { name: 'k', width: 'dk', range: 'normalized' },
    { name: 'v', width: 'dv', range: 'free' },
    { name: 'g', width: 'dk', range: 'logdecay' },
  ],
  readLinear: true,

  step(S: Float64Array, x: TokenInputs, { dk, dv }: Dims): void {
    glaToken(S, dk, dv, x.g as Float64Array, 0, x.k as Float64Array, 0, x.v as Float64Array, 0);
  },

  read: readOut,

  recurrent(seq: HeadSequence, S: Float64Array): Float64Array {
    checkSequence(gla, seq, S);
    const { n, dk, dv, q } = seq;
    const { k, v, g } = seq.inputs;
    const o = new Float64Array(n * dv);
    for (let t = 0; t < n; t++) {
      glaToken(S, dk, dv, g, t * dk, k, t * dk, v, t * dv);
      readOut(S, q.subarray(t * dk, (t + 1) * dk), seq, o.subarray(t * dv, (t + 1) * dv));
    }
    return o;
  },

  chunked(seq: HeadSequence, S: Float64Array, C: number): Float64Array {
    checkChunk(C);
    checkSequence(gla, seq, S);
    return decayChunked(seq, S, C, seq.inputs.g);
  },
};
