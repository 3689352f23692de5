/**
 * Cutting a case along time, for the decode properties (prefill + steps, prefill in pieces):
 * tokens [t0, t1) of every [B, T, ...] array, and the pieces a sequence is fed in.
 */
import fc from 'fast-check';
import type { CoreInputs, MemoryInputs } from '../reference/types.js';

/** Rows [t0, t1) of a [B, T, w] array (w values per token). */
export function sliceTime<A extends Float64Array | Float32Array>(a: A, B: number, T: number, t0: number, t1: number): A {
  const w = a.length / (B * T);
  const out = new (a.constructor as { new (n: number): A })(B * (t1 - t0) * w);
  for (let b = 0; b < B; b++) out.set(a.subarray((b * T + t0) * w, (b * T + t1) * w), b * (t1 - t0) * w);
  return out;
}

/** The inputs of tokens [t0, t1), shapes for T = t1 − t0. */
export function sliceInputs(x: CoreInputs, B: number, T: number, t0: number, t1: number): CoreInputs {
  const mem = (m: MemoryInputs): MemoryInputs => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, sliceTime(v, B, T, t0, t1)]));
  return {
    q: sliceTime(x.q, B, T, t0, t1),
    logits: sliceTime(x.logits, B, T, t0, t1),
    memories: x.memories.map(mem),
    shared: x.shared ? mem(x.shared) : null,
  };
}

/** Write a piece [B, n, w] into `full` [B, T, w] at tokens [t0, t0 + n). */
export function placeTime(full: Float64Array, piece: ArrayLike<number>, B: number, T: number, t0: number): void {
  const w = full.length / (B * T);
  const n = piece.length / (B * w);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < n * w; i++) full[(b * T + t0) * w + i] = piece[b * n * w + i];
}

/** Put per-piece outputs [B, Tp, w] back into one [B, T, w] array. */
export function joinTime(pieces: { t0: number; o: ArrayLike<number> }[], B: number, T: number, w: number): Float64Array {
  const out = new Float64Array(B * T * w);
  for (const { t0, o } of pieces) placeTime(out, o, B, T, t0);
  return out;
}

/**
 * How a sequence of T tokens is fed to a decode state:
 * - 'prefill+steps': prefill tokens [0, p), then one step per token;
 * - 'pieces': prefill in several pieces cut at random points (a piece of one token after the
 *   first is fed with step()).
 */
export interface Feeding {
  kind: 'prefill+steps' | 'pieces';
  /** piece boundaries, increasing, 0 < cut < T */
  cuts: number[];
}

/** Pieces [t0, t1) of a feeding. */
export function pieces(f: Feeding, T: number): [number, number][] {
  const b = [0, ...f.cuts, T];
  return b.slice(1).map((t1, i) => [b[i], t1]);
}

/** A feeding for T tokens; `maxSteps` bounds the number of single-token steps (GPU cost). */
export function feedingArb(T: number, maxSteps = Infinity): fc.Arbitrary<Feeding> {
  if (T === 1) return fc.constant({ kind: 'prefill+steps', cuts: [] });
  const minP = Math.max(1, T - maxSteps);
  const steps = fc.integer({ min: minP, max: T }).map((p) => ({ kind: 'prefill+steps' as const, cuts: Array.from({ length: T - p }, (_, i) => p + i) }));
  const cut = fc
    .uniqueArray(fc.integer({ min: 1, max: T - 1 }), { minLength: 1, maxLength: Math.min(4, T - 1) })
    .map((c) => ({ kind: 'pieces' as const, cuts: c.sort((a, b) => a - b) }));
  return fc.oneof(steps, cut);
}
