/**
 * Backward of docs/spec.md §3 `decay` (forward: reference/rules/decay.ts), one scalar decay α = e^g.
 *
 *   forward   S_t = α S_{t-1} + k vᵀ
 *   backward  dk = dS_t v,   dv = dS_tᵀ k
 *             dg = α ⟨dS_t, S_{t-1}⟩            (∂α/∂g = α)
 *             dS_{t-1} = α dS_t                  (the decay applies to the gradient in reverse)
 */
import type { Dims, TokenInputs } from '../types.js';
import { frobenius, type RuleBackward, type TokenGrads } from './common.js';

export const decayBack: RuleBackward = {
  name: 'decay',
  stepBack(S: Float64Array, x: TokenInputs, dS: Float64Array, dx: TokenGrads, { dk, dv }: Dims): void {
    const k = x.k as Float64Array, v = x.v as Float64Array;
    const alpha = Math.exp(x.g as number);
    for (let i = 0; i < dk; i++)
      for (let j = 0; j < dv; j++) {
        dx.k[i] += dS[i * dv + j] * v[j];
        dx.v[j] += dS[i * dv + j] * k[i];
      }
    dx.g[0] += alpha * frobenius(dS, S, dk * dv);
    for (let i = 0; i < dk * dv; i++) dS[i] *= alpha;
  },
};
