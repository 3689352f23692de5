/**
 * What a property is, so that the vitest suites, `momlab check` and `momlab fuzz` can all run the
 * same ones: an arbitrary drawing a case for a rule, and a check measuring one case.
 */
import type fc from 'fast-check';
import type { GpuContext } from '../gpu/device.js';
import type { GpuRule } from '../gpu/kernels/types.js';
import type { Rule } from '../reference/types.js';
import type { BuiltinRule } from '../reference/rules/types.js';
import type { SizeRanges } from './arbitraries.js';

/**
 * A rule under test, on both sides. `chunked` is present for rules that have a reference
 * chunkwise form (the built-ins); `gpu` when a GPU kernel exists (built-ins, compiled text rules).
 */
export interface RuleTarget {
  name: string;
  ref: Rule;
  chunked?: BuiltinRule;
  gpu?: GpuRule;
}

export interface PropertyEnv {
  /** present when the property needs the GPU */
  ctx?: GpuContext;
}

/** The measurement of one case. */
export interface Outcome {
  ok: boolean;
  /** worst docs/spec.md §9 error ratio over the compared quantities (0 for exact / structural checks) */
  errRatio: number;
  /** worst max |ref − got| */
  maxAbs: number;
  /** the tolerance the ratio was held to (0 for exact checks) */
  tolerance: number;
  /** why it failed, naming the quantity */
  message?: string;
}

export interface Property<C> {
  /** stable identifier, used by `momlab check --property` and in replay commands */
  id: string;
  /** one line: what must hold */
  title: string;
  needsGpu: boolean;
  /** false for rule-independent properties (routing, gather): run once, not per rule */
  perRule: boolean;
  /** whether the property can run on this target (e.g. the GPU chunk form needs chunk kernels) */
  applies(t: RuleTarget): boolean;
  arbitrary(t: RuleTarget, sizes: SizeRanges): fc.Arbitrary<C>;
  check(env: PropertyEnv, t: RuleTarget, c: C): Promise<Outcome> | Outcome;
  /** the shrunk configuration of a case, short enough to print (no big arrays) */
  describe(c: C): unknown;
}

/** A structural (exact) check result. */
export const exact = (ok: boolean, message?: string): Outcome => ({ ok, errRatio: 0, maxAbs: 0, tolerance: 0, message: ok ? undefined : message });
