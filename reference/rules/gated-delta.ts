/**
 * docs/spec.md §3, `gated-delta` (Gated DeltaNet): S̄ = α S;  S' = S̄ + β k (v − S̄ᵀk)ᵀ, α = e^g, β ∈ (0,1).
 * Chunked: the UT transform of docs/spec.md §5 with the decays.
 */
import type { Dims, TokenInputs } from '../types.js';
import { deltaChunked } from './chunk.js';
import { checkChunk, checkSequence, readOut, stepThrough } from './common.js';
import type { BuiltinRule, HeadSequence } from './types.js';

export const gatedDelta: BuiltinRule = {
  name: 'gated-delta',
  inputs: [
    { name: 'k', width: 'dk', range: 'normalized' },
    { name: 'v', width: 'dv', range: 'free' },
    { name: 'g', width: 'scalar', range: 'logdecay' },
    { name: 'beta', width: 'scalar', range: 'unit' },
  ],
  readLinear: true,

  /** S ← α S + k uᵀ with u = β (v − α Sᵀk); α Sᵀk = S̄ᵀk, so S̄ is never formed. */
  step(S: Float64Array, x: TokenInputs, { dk, dv }: Dims): void {
    const k = x.k as Float64Array, v = x.v as Float64Array;
    const alpha = Math.exp(x.g as number), beta = x.beta as number;
    // u = Sᵀk, on the undecayed state.
    const u = new Float64Array(dv);
    for (let i = 0; i < dk; i++) {
      const ki = k[i], row = i * dv;
      for (let j = 0; j < dv; j++) u[j] += S[row + j] * ki;
    }
    // u = β (v − α Sᵀk): the correction towards v, against the decayed state.
    for (let j = 0; j < dv; j++) u[j] = beta * (v[j] - alpha * u[j]);
    for (let i = 0; i < dk; i++) {
      const ki = k[i], row = i * dv;
      for (let j = 0; j < dv; j++) S[row + j] = alpha * S[row + j] + ki * u[j];
    }
  },

  read: readOut,

  recurrent: (seq: HeadSequence, S: Float64Array): Float64Array => stepThrough(gatedDelta, seq, S),

  chunked(seq: HeadSequence, S: Float64Array, C: number): Float64Array {
    checkChunk(C);
    checkSequence(gatedDelta, seq, S);
    return deltaChunked(seq, S, C, seq.inputs.g);
  },
};
