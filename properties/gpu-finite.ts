/**
 * `gpu-finite`: wherever the float64 reference stays inside float32's range over a long sequence, the
 * GPU's float32 outputs and final states are finite. A kernel that overflows an intermediate (a
 * product of decays, an unnormalised sum) while the quantity itself is representable fails here,
 * even when short cases agree with the reference. Inputs are seeded in their declared ranges, as for
 * `state-bounded`; a case whose reference leaves float32's range is not a case of this property.
 */
import fc from 'fast-check';
import { momForward } from '../reference/mom.js';
import { sampleCoreInputs } from '../reference/sample.js';
import type { CoreConfig } from '../reference/types.js';
import { checkedForward } from './canary.js';
import { forwardMode, gpuModeArb, type GpuMode } from './gpu-mode.js';
import type { Property } from './types.js';

/** float32's largest finite value. */
const F32_MAX = 3.4028234663852886e38;

export interface GpuFiniteCase {
  cfg: CoreConfig;
  seed: number;
  mode: GpuMode;
}

const maxAbs = (a: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
};

const firstNonFinite = (a: ArrayLike<number>): number => {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return i;
  return -1;
};

export const gpuStaysFinite: Property<GpuFiniteCase> = {
  id: 'gpu-finite',
  title: 'GPU: outputs and final states are finite wherever the float64 reference stays within float32 range (long sequences)',
  needsGpu: true,
  perRule: true,
  applies: (t) => t.gpu !== undefined,
  arbitrary: (t) =>
    fc.record({
      cfg: fc.record({
        B: fc.constant(1),
        T: fc.integer({ min: 64, max: 400 }),
        H: fc.integer({ min: 1, max: 2 }),
        E: fc.integer({ min: 1, max: 3 }),
        topk: fc.constant(1),
        dk: fc.integer({ min: 2, max: 6 }),
        dv: fc.integer({ min: 2, max: 6 }),
        shared: fc.boolean(),
      }),
      seed: fc.integer({ min: 0, max: 0xffff }),
      mode: gpuModeArb(t.gpu!),
    }),
  async check(env, t, c) {
    const x = sampleCoreInputs(t.ref, c.cfg, c.seed);
    const ref = momForward(t.ref, c.cfg, x);
    const refMax = Math.max(maxAbs(ref.o), maxAbs(ref.final.routed), maxAbs(ref.final.shared ?? []));
    fc.pre(Number.isFinite(refMax) && refMax < F32_MAX);
    const got = await checkedForward(env.ctx!, t.gpu!, c.cfg, x, forwardMode(c.mode));
    for (const [what, a] of [
      ['o', got.o],
      ['final.routed', got.final.routed],
      ['final.shared', got.final.shared ?? []],
    ] as const) {
      const at = firstNonFinite(a);
      if (at >= 0)
        return {
          ok: false,
          errRatio: NaN,
          maxAbs: NaN,
          tolerance: 0,
          message: `${c.mode}: ${what}[${at}] is ${a[at]} while the float64 reference stays below ${refMax.toExponential(2)}`,
        };
    }
    return { ok: true, errRatio: 0, maxAbs: 0, tolerance: 0 };
  },
  describe: (c) => c,
};
