/**
 * docs/spec.md §4: for a rule whose read-out is linear in the state, mixing the per-memory outputs
 * ("after") equals reading the mixed state ("before"):
 *   Σ_j w_j S_jᵀ q + S_sᵀ q  =  (Σ_j w_j S_j + S_s)ᵀ q.
 * Checked on the reference (float64) and on the GPU (float32, both paths on the device).
 */
import fc from 'fast-check';
import { momForward } from '../reference/mom.js';
import { checkedForward } from './canary.js';
import { coreCaseArb, type CoreCase } from './arbitraries.js';
import { compareAll, compareOutcome, describeFailures } from './compare.js';
import { fitsDevice } from './gpu-mode.js';
import { gpuMixTolerance, gpuTolerance } from './tolerances.js';
import type { Property } from './types.js';

// Float64, the same products summed in two orders: measured worst error ratio 2.4e-15 over
// 1000 cases per rule (sizes 'small'); 1e-10 as for every float64 identity here.
const REF_MIX_TOL = 1e-10;

export const refMixBeforeEqualsAfter: Property<CoreCase> = {
  id: 'mix-before-equals-after',
  title: 'reference: mixing the read-outs equals reading the mixed state (linear read-out)',
  needsGpu: false,
  perRule: true,
  applies: (t) => t.ref.readLinear,
  arbitrary: (t, sizes) => coreCaseArb(t.ref.inputs, sizes),
  check(_env, t, c) {
    const after = momForward(t.ref, c.cfg, c.x, { initial: c.initial, mix: 'after' });
    const before = momForward(t.ref, c.cfg, c.x, { initial: c.initial, mix: 'before' });
    return compareOutcome([{ what: 'o (after vs before)', ref: after.o, got: before.o }], REF_MIX_TOL, { atol: 0 });
  },
  describe: (c) => c,
};

/**
 * GPU: the mix-before path (token-by-token kernel writing the state after every token, then
 * M̃ = Σ w S + S_s read with q) equals the mix-after path on the same kernel, and the
 * reference (mix after) too, so that a shared mistake in both GPU paths cannot hide.
 */
export const gpuMixBeforeEqualsAfter: Property<CoreCase> = {
  id: 'gpu-mix-before-equals-after',
  title: 'GPU: mixing the read-outs equals reading the mixed state (and both equal the reference)',
  needsGpu: true,
  perRule: true,
  applies: (t) => t.gpu !== undefined && t.gpu.readLinear && t.gpu.modes.includes('recurrent'),
  arbitrary: (t, sizes) => coreCaseArb(t.ref.inputs, sizes),
  async check(env, t, c) {
    fc.pre(fitsDevice(env.ctx!, t.gpu!, c.cfg, 'before'));
    const ref = momForward(t.ref, c.cfg, c.x, { initial: c.initial });
    const after = await checkedForward(env.ctx!, t.gpu!, c.cfg, c.x, { mode: 'recurrent', mix: 'after', initial: c.initial });
    const before = await checkedForward(env.ctx!, t.gpu!, c.cfg, c.x, { mode: 'recurrent', mix: 'before', initial: c.initial });
    const tolPair = gpuMixTolerance(t.name);
    const tolRef = gpuTolerance(t.name);
    const vsRef = compareAll([
      { what: 'o (reference vs GPU before)', ref: ref.o, got: before.o },
      { what: 'final.routed (reference vs GPU before)', ref: ref.final.routed, got: before.final.routed },
    ]);
    // The ratio reported is the identity's (after vs before); the reference check guards it.
    return compareOutcome([{ what: 'o (GPU after vs GPU before)', ref: after.o, got: before.o }], tolPair, { problem: describeFailures(vsRef.items, tolRef) });
  },
  describe: (c) => c,
};
