/**
 * Backward of docs/spec.md §3 `linear` (forward: reference/rules/linear.ts).
 *
 *   forward   S_t = S_{t-1} + k vᵀ
 *   backward  dk = dS_t v,   dv = dS_tᵀ k,   dS_{t-1} = dS_t   (the state passes through unchanged)
 */
import type { Dims, TokenInputs } from '../types.js';
import type { RuleBackward, TokenGrads } from './common.js';

export const linearBack: RuleBackward = {
  name: 'linear',
  stepBack(_S: Float64Array, x: TokenInputs, dS: Float64Array, dx: TokenGrads, { dk, dv }: Dims): void {
    const k = x.k as Float64Array, v = x.v as Float64Array;
    for (let i = 0; i < dk; i++)
      for (let j = 0; j < dv; j++) {
        dx.k[i] += dS[i * dv + j] * v[j];
        dx.v[j] += dS[i * dv + j] * k[i];
      }
  },
};
