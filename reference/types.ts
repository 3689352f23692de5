/**
 * Shared shapes of the core MoM form (docs/spec.md §1-4, §7). The reference uses Float64Array;
 * the GPU side takes the same objects and converts to float32 at upload.
 *
 * Layout (fla's, row-major, innermost last):
 *   q                      [B, T, H, dk]
 *   logits (router)        [B, T, E]        one routing per token, shared by all heads
 *   memory input `x` of width w (k: dk, v: dv, g: 1 or dk, beta: 1)    [B, T, H, w]
 *   states                 [B, H, dk, dv]   per memory
 */

/** Per-token width of a rule input, in the head's sizes. */
export type Width = 'dk' | 'dv' | 'scalar';

/** What a generator must respect for an input (docs/spec.md §3: delta rules need unit keys, beta in (0,1)). */
export type InputRange =
  | 'free' // any finite value
  | 'normalized' // a vector of unit l2 norm
  | 'logdecay' // g <= 0 (a log-space gate)
  | 'unit' // in the open interval (0, 1)
  | Interval; // between literal bounds (a rule file's `range x in [a, b)`, `range x >= a`, ...)

/** Values from lo to hi; an infinite bound makes a one-sided range, an open end excludes its bound. */
export interface Interval {
  lo: number;
  hi: number;
  loOpen: boolean;
  hiOpen: boolean;
}

/**
 * The finite span generators draw an interval's values from: a one-sided range spans 2 from its
 * bound, and an open end keeps a margin of 5% of the span (as 'unit' draws from [0.05, 0.95]).
 */
export function intervalSpan(r: Interval): [number, number] {
  const lo = Number.isFinite(r.lo) ? r.lo : r.hi - 2;
  const hi = Number.isFinite(r.hi) ? r.hi : r.lo + 2;
  const margin = 0.05 * (hi - lo);
  return [r.loOpen ? lo + margin : lo, r.hiOpen ? hi - margin : hi];
}

export interface InputDecl {
  name: string;
  width: Width;
  range: InputRange;
}

export interface Dims {
  dk: number;
  dv: number;
}

/** One token's inputs for one memory and one head: vectors are subarrays, scalars are numbers. */
export type TokenInputs = Record<string, Float64Array | number>;

/**
 * An update rule (docs/spec.md §3, 8): a state S of size dk*dv (row-major S[i*dv + j], i < dk, j < dv),
 * an update from the state and the token's inputs, and a read-out.
 */
export interface Rule {
  readonly name: string;
  /** Per-token inputs of a memory, in a fixed order (built-ins: k, v, then g and/or beta). */
  readonly inputs: readonly InputDecl[];
  /** True when read(S, q) is linear in S: then mixing before and after the read-out agree. */
  readonly readLinear: boolean;
  /** S <- f(S; x), in place. */
  step(S: Float64Array, x: TokenInputs, dims: Dims): void;
  /** o = read(S, q) into `out` (length dv). Built-ins: o = S^T q. */
  read(S: Float64Array, q: Float64Array, dims: Dims, out: Float64Array): void;
}

export type RouteMix = 'after' | 'before';

export interface CoreConfig {
  B: number;
  T: number;
  H: number;
  /** number of routed memories */
  E: number;
  /** memories per token, 1 <= topk <= E */
  topk: number;
  dk: number;
  dv: number;
  /** an always-on shared memory, weight 1 */
  shared: boolean;
  /** query scale s; default dk^-1/2 */
  scale?: number;
}

/** Inputs of one memory: name -> [B, T, H, width]. */
export type MemoryInputs = Record<string, Float64Array>;

export interface CoreInputs {
  q: Float64Array; // [B, T, H, dk]
  logits: Float64Array; // [B, T, E]
  memories: MemoryInputs[]; // E entries
  shared: MemoryInputs | null; // present iff config.shared
}

/** The state of all memories: routed [E, B, H, dk, dv]; shared [B, H, dk, dv] or null. */
export interface CoreState {
  routed: Float64Array;
  shared: Float64Array | null;
}

export interface CoreOutputs {
  o: Float64Array; // [B, T, H, dv]
  final: CoreState;
}

/** docs/spec.md §2: per token, the chosen memories and their renormalised weights. */
export interface Routing {
  probs: Float64Array; // [B, T, E]
  indices: Int32Array; // [B, T, topk], ordered by descending p then ascending index
  weights: Float64Array; // [B, T, topk], sums to 1 per token
}

export const widthOf = (w: Width, d: Dims): number => (w === 'dk' ? d.dk : w === 'dv' ? d.dv : 1);
