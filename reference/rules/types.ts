/**
 * What a built-in rule offers beyond the generic `Rule` (reference/types.ts): whole-sequence
 * forms over one head's sequence of tokens, used by the gathered form of docs/spec.md §4 and checked
 * against each other (recurrent vs chunked, docs/spec.md §5) by the property suite.
 */
import type { Rule } from '../types.js';

/**
 * One head's token sequence for one memory (e.g. the subsequence routed to memory e).
 * Arrays are row-major, token-major: q[t*dk + i], inputs.k[t*dk + i], inputs.v[t*dv + j],
 * scalar gates inputs.g[t] / inputs.beta[t], a gla gate inputs.g[t*dk + i].
 */
export interface HeadSequence {
  n: number;
  dk: number;
  dv: number;
  /** [n*dk], already multiplied by the query scale s (docs/spec.md §4) */
  q: Float64Array;
  /** input name -> [n*width], names and widths as in `rule.inputs` */
  inputs: Record<string, Float64Array>;
}

export interface BuiltinRule extends Rule {
  /**
   * docs/spec.md §3, token by token: for t = 0..n-1, S <- f(S; x_t), o_t = S^T q_t.
   * Updates S (dk*dv) in place from the initial to the final state; returns o [n*dv].
   */
  recurrent(seq: HeadSequence, S: Float64Array): Float64Array;
  /**
   * docs/spec.md §5, chunk by chunk of C tokens (any C >= 1; the last chunk may be shorter).
   * Same contract and, up to rounding, the same result as `recurrent`.
   */
  chunked(seq: HeadSequence, S: Float64Array, C: number): Float64Array;
}
