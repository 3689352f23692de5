/**
 * docs/spec.md §9: how two arrays of numbers are compared.
 *
 *   err = rms(ref − got) / (rms(ref) + 1e-8)
 *
 * A comparison passes outright when max|ref − got| ≤ atol (1e-6 by default, as docs/spec.md §9 says for
 * float32; float64 properties pass atol = 0 so that only the ratio decides). Both numbers are
 * reported, since a small ratio can hide one bad element and a small max can hide a tiny ref.
 * NaN (or ±Infinity) anywhere, or arrays of different lengths, always fail.
 */
import type { Outcome } from './types.js';

export interface Comparison {
  /** rms(ref − got) / (rms(ref) + 1e-8); NaN when either side holds a non-finite value */
  errRatio: number;
  /** max |ref − got|; NaN when either side holds a non-finite value */
  maxAbs: number;
  /** index of the largest |ref − got| (-1 for empty arrays) */
  worstIndex: number;
  /** a NaN or infinity on either side, or a length mismatch */
  broken: string | null;
  /** true when errRatio ≤ tol or maxAbs ≤ atol, and nothing is broken */
  pass(tol: number, atol?: number): boolean;
}

export const SPEC_ATOL = 1e-6;

export function compareArrays(ref: ArrayLike<number>, got: ArrayLike<number>): Comparison {
  let broken: string | null = null;
  if (ref.length !== got.length) broken = `length mismatch: reference has ${ref.length} values, got ${got.length}`;
  const n = Math.min(ref.length, got.length);
  let sumD = 0;
  let sumR = 0;
  let maxAbs = 0;
  let worstIndex = n > 0 ? 0 : -1;
  for (let i = 0; i < n; i++) {
    const r = ref[i];
    const g = got[i];
    if (!Number.isFinite(r) || !Number.isFinite(g)) {
      broken ??= `non-finite value at index ${i}: reference ${r}, got ${g}`;
      continue;
    }
    const d = Math.abs(r - g);
    sumD += d * d;
    sumR += r * r;
    if (d > maxAbs) {
      maxAbs = d;
      worstIndex = i;
    }
  }
  const rms = (s: number) => (n > 0 ? Math.sqrt(s / n) : 0);
  const errRatio = broken ? NaN : rms(sumD) / (rms(sumR) + 1e-8);
  if (broken) maxAbs = NaN;
  return {
    errRatio,
    maxAbs,
    worstIndex,
    broken,
    pass(tol: number, atol = SPEC_ATOL) {
      if (broken) return false;
      return maxAbs <= atol || errRatio <= tol;
    },
  };
}

/** A named comparison, so that a failure says which quantity (o, final.routed, ...) went wrong. */
export interface NamedComparison extends Comparison {
  what: string;
}

/** A quantity to compare, named for the failure message. */
export interface ComparePair {
  what: string;
  ref: ArrayLike<number>;
  got: ArrayLike<number>;
}

/**
 * Several quantities checked against one tolerance: passes when every one passes; the worst
 * ratio and max abs are the largest over all of them (NaN wins).
 */
export function compareAll(pairs: ComparePair[]): { items: NamedComparison[]; errRatio: number; maxAbs: number } {
  const items = pairs.map((p) => Object.assign(compareArrays(p.ref, p.got), { what: p.what }));
  const worst = (f: (c: Comparison) => number) => items.reduce((m, c) => (Number.isNaN(f(c)) || Number.isNaN(m) ? NaN : Math.max(m, f(c))), 0);
  return { items, errRatio: worst((c) => c.errRatio), maxAbs: worst((c) => c.maxAbs) };
}

/** One line per failing quantity, for failure messages. */
export function describeFailures(items: NamedComparison[], tol: number, atol = SPEC_ATOL): string {
  return items
    .filter((c) => !c.pass(tol, atol))
    .map((c) => (c.broken ? `${c.what}: ${c.broken}` : `${c.what}: err ratio ${c.errRatio.toExponential(3)} > ${tol.toExponential(1)} and max abs ${c.maxAbs.toExponential(3)} > ${atol.toExponential(1)} (worst at index ${c.worstIndex})`))
    .join('; ');
}

/** The outputs a forward (or a decode) leaves: o and the final states. */
export interface ForwardResult {
  o: ArrayLike<number>;
  final: { routed: ArrayLike<number>; shared: ArrayLike<number> | null };
}

/** o, final.routed and final.shared of two forwards, as pairs for compareOutcome. */
export function forwardPairs(ref: ForwardResult, got: ForwardResult): ComparePair[] {
  return [
    { what: 'o', ref: ref.o, got: got.o },
    { what: 'final.routed', ref: ref.final.routed, got: got.final.routed },
    { what: 'final.shared', ref: ref.final.shared ?? [], got: got.final.shared ?? [] },
  ];
}

/**
 * A property's outcome from comparing `pairs` against one tolerance: it passes when every
 * quantity does and there is no `problem`; a failure's message names them, after `context`
 * (e.g. the kernel mode) when given.
 */
export function compareOutcome(pairs: ComparePair[], tol: number, opts: { atol?: number; context?: string; problem?: string | null } = {}): Outcome {
  const { atol = SPEC_ATOL, context, problem } = opts;
  const cmp = compareAll(pairs);
  const ok = !problem && cmp.items.every((i) => i.pass(tol, atol));
  const why = [problem, describeFailures(cmp.items, tol, atol)].filter(Boolean).join('; ');
  return { ok, errRatio: cmp.errRatio, maxAbs: cmp.maxAbs, tolerance: tol, message: ok ? undefined : context ? `${context}: ${why}` : why };
}
