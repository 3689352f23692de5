/**
 * Backward of docs/spec.md §3 `gated-delta` (Gated DeltaNet; forward: reference/rules/gated-delta.ts),
 * α = e^g.
 *
 *   forward   S̄ = α S_{t-1}           (decay first)
 *             e = v − S̄ᵀk            (the error against the decayed state)
 *             u = β e
 *             S_t = S̄ + k uᵀ
 *
 *   backward  du = dS_tᵀ k
 *             dv = β du
 *             dβ = ⟨du, e⟩
 *             dS̄ = dS_t − β k duᵀ = (I − β k kᵀ) dS_t
 *             dk = dS_t u − β S̄ du
 *             dg = ⟨dS̄, S̄⟩             (= α ⟨dS̄, S_{t-1}⟩; ∂α/∂g = α)
 *             dS_{t-1} = α dS̄
 *
 * So the reverse state is dS_{t-1} = α_t (I − β_t k_t k_tᵀ) dS_t, plus the read-out's q_{t-1} do_{t-1}ᵀ
 * added by the core (reference/backward/mom.ts). The decay gradient reads the reverse state after the
 * delta correction and before the decay, in that order.
 */
import type { Dims, TokenInputs } from '../types.js';
import { frobenius, type RuleBackward, type TokenGrads } from './common.js';

export const gatedDeltaBack: RuleBackward = {
  name: 'gated-delta',
  stepBack(S: Float64Array, x: TokenInputs, dS: Float64Array, dx: TokenGrads, { dk, dv }: Dims): void {
    const k = x.k as Float64Array, v = x.v as Float64Array;
    const alpha = Math.exp(x.g as number);
    const beta = x.beta as number;
    // Recompute the forward: S̄ = α S_{t-1}, e = v − S̄ᵀk, u = β e.
    const Sbar = S.map((s) => alpha * s);
    const e = Float64Array.from(v);
    for (let i = 0; i < dk; i++) for (let j = 0; j < dv; j++) e[j] -= Sbar[i * dv + j] * k[i];
    const u = e.map((ej) => beta * ej);
    // du = dS_tᵀ k
    const du = new Float64Array(dv);
    for (let i = 0; i < dk; i++) for (let j = 0; j < dv; j++) du[j] += dS[i * dv + j] * k[i];

    for (let j = 0; j < dv; j++) {
      dx.v[j] += beta * du[j];
      dx.beta[0] += du[j] * e[j];
    }
    for (let i = 0; i < dk; i++)
      for (let j = 0; j < dv; j++) dx.k[i] += dS[i * dv + j] * u[j] - beta * Sbar[i * dv + j] * du[j];
    // dS̄ = dS_t − β k duᵀ, in place
    for (let i = 0; i < dk; i++) for (let j = 0; j < dv; j++) dS[i * dv + j] -= beta * k[i] * du[j];
    dx.g[0] += frobenius(dS, Sbar, dk * dv);
    // dS_{t-1} = α dS̄
    for (let i = 0; i < dk * dv; i++) dS[i] *= alpha;
  },
};
