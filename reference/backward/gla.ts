/**
 * Backward of docs/spec.md §3 `gla` (forward: reference/rules/gla.ts), one decay α_i = e^{g_i} per key channel.
 *
 *   forward   S_t = diag(α) S_{t-1} + k vᵀ
 *   backward  dk = dS_t v,   dv = dS_tᵀ k
 *             dg_i = α_i Σ_j dS_t[i, j] S_{t-1}[i, j]     (row i only sees its own decay)
 *             dS_{t-1} = diag(α) dS_t
 */
import type { Dims, TokenInputs } from '../types.js';
import type { RuleBackward, TokenGrads } from './common.js';

export const glaBack: RuleBackward = {
  name: 'gla',
  stepBack(S: Float64Array, x: TokenInputs, dS: Float64Array, dx: TokenGrads, { dk, dv }: Dims): void {
    const k = x.k as Float64Array, v = x.v as Float64Array, g = x.g as Float64Array;
    for (let i = 0; i < dk; i++) {
      const alpha = Math.exp(g[i]);
      const row = i * dv;
      let rowDot = 0; // Σ_j dS_t[i, j] S_{t-1}[i, j]
      for (let j = 0; j < dv; j++) {
        dx.k[i] += dS[row + j] * v[j];
        dx.v[j] += dS[row + j] * k[i];
        rowDot += dS[row + j] * S[row + j];
      }
      dx.g[i] += alpha * rowDot;
      for (let j = 0; j < dv; j++) dS[row + j] *= alpha;
    }
  },
};
