/**
 * SPEC 4: for a rule whose read-out is linear in the state, mixing the per-memory outputs
 * ("after") equals reading the mixed state ("before"):
 *   Σ_j w_j S_jᵀ q + S_sᵀ q  =  (Σ_j w_j S_j + S_s)ᵀ q.
 * Checked on the reference (float64) and on the GPU (float32, both paths on the device).
 */
import { momForward } from '../reference/mom.js';
import { coreCaseArb, type CoreCase } from './arbitraries.js';
import { compareAll, describeFailures } from './compare.js';
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
    const cmp = compareAll([{ what: 'o (after vs before)', ref: after.o, got: before.o }]);
    const ok = cmp.items.every((i) => i.pass(REF_MIX_TOL, 0));
    return { ok, errRatio: cmp.errRatio, maxAbs: cmp.maxAbs, tolerance: REF_MIX_TOL, message: ok ? undefined : describeFailures(cmp.items, REF_MIX_TOL, 0) };
  },
  describe: (c) => c,
};
