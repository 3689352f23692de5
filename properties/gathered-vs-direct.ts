/**
 * docs/spec.md §4, gathered form: running each memory over its own (stable) subsequence and scattering
 * the outputs back with their weights equals the direct token-by-token recurrence, outputs and
 * final states, from a random initial state; for built-in rules also with each subsequence in
 * the chunked form (any chunk size).
 */
import fc from 'fast-check';
import { momForward, momGathered } from '../reference/mom.js';
import { coreCaseArb, refChunkArb, type CoreCase } from './arbitraries.js';
import { compareOutcome, forwardPairs } from './compare.js';
import type { Property } from './types.js';

// Float64 both sides, the same arithmetic up to summation order (and, with a chunk size, the
// chunked form's reassociation): measured worst error ratio 1.0e-15, max abs 1.8e-15, over
// 1000 cases per rule (sizes 'small', about half of them chunked).
// 1e-10 is the bound for float64 identities; any real slip (a token out of order, a
// weight on the wrong memory) gives 1e-2 or more.
const GATHER_TOL = 1e-10;

export type GatherCase = CoreCase & { chunk?: number };

export const gatheredEqualsDirect: Property<GatherCase> = {
  id: 'gathered-equals-direct',
  title: 'reference: gathered form (per-memory subsequences, chunked or not) equals the direct recurrence',
  needsGpu: false,
  perRule: true,
  applies: () => true,
  arbitrary: (t, sizes) =>
    fc
      .record({ c: coreCaseArb(t.ref.inputs, sizes), chunk: t.chunked ? fc.option(refChunkArb, { nil: undefined }) : fc.constant(undefined) })
      .map(({ c, chunk }) => (chunk === undefined ? c : { ...c, chunk })),
  check(_env, t, c) {
    const direct = momForward(t.ref, c.cfg, c.x, { initial: c.initial });
    const rule = c.chunk !== undefined ? t.chunked! : t.ref;
    const gathered = momGathered(rule, c.cfg, c.x, { initial: c.initial, chunk: c.chunk });
    return compareOutcome(forwardPairs(direct, gathered), GATHER_TOL, { atol: 0 });
  },
  describe: (c) => c,
};
