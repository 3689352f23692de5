/**
 * Backward of docs/spec.md §2 routing (forward: reference/router.ts). The selection I_t is piecewise
 * constant in the logits, so it is held fixed; only the weights carry a gradient:
 *
 *   forward   p = softmax(z)   (over all E)
 *             P = Σ_{j∈I} p_j,   w_e = p_e / P   for e ∈ I
 *
 *   backward  dp_e = (dw_e − Σ_{a∈I} w_a dw_a) / P   for e ∈ I, 0 otherwise   (quotient rule)
 *             dz = p ⊙ (dp − ⟨p, dp⟩)                                     (softmax Jacobian)
 *
 * Together dz_e = w_e (dw_e − ⟨w, dw⟩) on I and 0 off I (up to rounding): the renormalised
 * weights are a softmax over the selected logits alone. The code follows the two steps above.
 */
import type { Routing } from '../types.js';

/** dz (length E) of one token from its probabilities p (length E), selection I and dw (length k). */
export function routeTokenBack(p: ArrayLike<number>, I: ArrayLike<number>, dw: ArrayLike<number>, dz: Float64Array): void {
  const E = p.length;
  const k = I.length;
  let P = 0;
  for (let j = 0; j < k; j++) P += p[I[j]];
  let wdw = 0; // Σ_{a∈I} w_a dw_a
  for (let j = 0; j < k; j++) wdw += (p[I[j]] / P) * dw[j];
  const dp = new Float64Array(E);
  for (let j = 0; j < k; j++) dp[I[j]] = (dw[j] - wdw) / P;
  let pdp = 0; // ⟨p, dp⟩
  for (let e = 0; e < E; e++) pdp += p[e] * dp[e];
  for (let e = 0; e < E; e++) dz[e] = p[e] * (dp[e] - pdp);
}

/** dlogits [B, T, E] from the routing of every token and dw [B, T, topk] (slot order of routing.indices). */
export function routeBack(routing: Routing, dw: Float64Array, B: number, T: number, E: number): Float64Array {
  const topk = routing.indices.length / (B * T);
  const dz = new Float64Array(B * T * E);
  for (let bt = 0; bt < B * T; bt++)
    routeTokenBack(
      routing.probs.subarray(bt * E, (bt + 1) * E),
      routing.indices.subarray(bt * topk, (bt + 1) * topk),
      dw.subarray(bt * topk, (bt + 1) * topk),
      dz.subarray(bt * E, (bt + 1) * E),
    );
  return dz;
}
