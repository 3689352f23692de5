/**
 * docs/spec.md §2, routing: softmax over the router logits, the top-k memories (ties to the lower
 * index), and their probabilities renormalised to sum to 1.
 */
import { ConfigError, ShapeError } from './errors.js';
import type { Routing } from './types.js';

/** Throws a ConfigError unless 1 <= topk <= E (integers). */
export function checkTopk(topk: number, E: number): void {
  if (!Number.isInteger(E) || E < 1) throw new ConfigError(`number of memories E must be a positive integer, got ${E}`);
  if (!Number.isInteger(topk) || topk < 1 || topk > E)
    throw new ConfigError(`top-k must be an integer with 1 <= k <= E = ${E}, got k = ${topk}`);
}

/** Route one token with logits z (length E). */
export function routeToken(z: ArrayLike<number>, topk: number): { probs: Float64Array; indices: number[]; weights: number[] } {
  const E = z.length;
  checkTopk(topk, E);
  for (let e = 0; e < E; e++)
    if (!Number.isFinite(z[e])) throw new ShapeError(`router logit z[${e}] is not finite (${z[e]})`);

  // 1. p = softmax(z); subtracting the max keeps exp() from overflowing.
  let max = -Infinity;
  for (let e = 0; e < E; e++) max = Math.max(max, z[e]);
  const probs = new Float64Array(E);
  let sum = 0;
  for (let e = 0; e < E; e++) sum += probs[e] = Math.exp(z[e] - max);
  for (let e = 0; e < E; e++) probs[e] /= sum;

  // 2. The k largest p, ordered by descending p then ascending index: a stable sort of
  //    0..E-1 by descending p keeps equal p in index order, so ties go to the lower index.
  const order = Array.from({ length: E }, (_, e) => e).sort((a, b) => probs[b] - probs[a] || a - b);
  const indices = order.slice(0, topk);

  // 3. Renormalise over the chosen memories.
  let chosen = 0;
  for (const e of indices) chosen += probs[e];
  const weights = indices.map((e) => probs[e] / chosen);
  return { probs, indices, weights };
}

/** Route every token of logits [B, T, E]. */
export function route(logits: Float64Array, B: number, T: number, E: number, topk: number): Routing {
  checkTopk(topk, E);
  for (const [name, n] of [['B', B], ['T', T]] as const)
    if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${name} must be a positive integer, got ${n}`);
  if (logits.length !== B * T * E)
    throw new ShapeError(`router logits must have length B*T*E = ${B}*${T}*${E} = ${B * T * E}, got ${logits.length}`);
  const probs = new Float64Array(B * T * E);
  const indices = new Int32Array(B * T * topk);
  const weights = new Float64Array(B * T * topk);
  for (let bt = 0; bt < B * T; bt++) {
    const r = routeToken(logits.subarray(bt * E, (bt + 1) * E), topk);
    probs.set(r.probs, bt * E);
    indices.set(r.indices, bt * topk);
    weights.set(r.weights, bt * topk);
  }
  return { probs, indices, weights };
}
