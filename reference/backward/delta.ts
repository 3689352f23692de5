/**
 * Backward of docs/spec.md §3 `delta` (DeltaNet; forward: reference/rules/delta.ts).
 *
 *   forward   e = v − S_{t-1}ᵀk   (the error: what the memory returns for k, against v)
 *             u = β e
 *             S_t = S_{t-1} + k uᵀ
 *
 *   backward  du = dS_tᵀ k                         (the outer product k uᵀ, seen from u)
 *             dv = β du
 *             dβ = ⟨du, e⟩                          (β scales the error)
 *             dk = dS_t u − β S_{t-1} du            (k in the outer product, and k in the error Sᵀk)
 *             dS_{t-1} = dS_t − β k duᵀ = (I − β k kᵀ) dS_t
 *
 * So the reverse state runs the transposed transition: dS_{t-1} = (I − β_t k_t k_tᵀ) dS_t, to which
 * the core adds the read-out's q_{t-1} do_{t-1}ᵀ (reference/backward/mom.ts).
 */
import type { Dims, TokenInputs } from '../types.js';
import type { RuleBackward, TokenGrads } from './common.js';

export const deltaBack: RuleBackward = {
  name: 'delta',
  stepBack(S: Float64Array, x: TokenInputs, dS: Float64Array, dx: TokenGrads, { dk, dv }: Dims): void {
    const k = x.k as Float64Array, v = x.v as Float64Array;
    const beta = x.beta as number;
    // Recompute the forward's error e = v − Sᵀk and correction u = β e.
    const e = Float64Array.from(v);
    for (let i = 0; i < dk; i++) for (let j = 0; j < dv; j++) e[j] -= S[i * dv + j] * k[i];
    const u = e.map((ej) => beta * ej);
    // du = dS_tᵀ k
    const du = new Float64Array(dv);
    for (let i = 0; i < dk; i++) for (let j = 0; j < dv; j++) du[j] += dS[i * dv + j] * k[i];

    for (let j = 0; j < dv; j++) {
      dx.v[j] += beta * du[j];
      dx.beta[0] += du[j] * e[j];
    }
    for (let i = 0; i < dk; i++)
      for (let j = 0; j < dv; j++) dx.k[i] += dS[i * dv + j] * u[j] - beta * S[i * dv + j] * du[j];
    // dS_{t-1} = dS_t − β k duᵀ (after dk used dS_t)
    for (let i = 0; i < dk; i++) for (let j = 0; j < dv; j++) dS[i * dv + j] -= beta * k[i] * du[j];
  },
};
