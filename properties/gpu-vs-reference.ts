/**
 * Issue 3: the GPU forward (float32) equals the reference (float64), for every rule, token by
 * token and chunked (16, 32, 64): outputs and final states (routed and shared), from zeros or a
 * random initial state. Everything read back from the GPU goes through `readback`, which checks
 * the canary after every output buffer (gpu/buffers.ts): an out-of-bounds write fails the case.
 */
import fc from 'fast-check';
import { checkedForward } from './canary.js';
import { momForward } from '../reference/mom.js';
import { coreCaseArb, type CoreCase } from './arbitraries.js';
import { compareOutcome, forwardPairs } from './compare.js';
import { forwardMode, gpuModeArb, type GpuMode } from './gpu-mode.js';
import { gpuTolerance } from './tolerances.js';
import type { Property } from './types.js';

export type GpuCase = CoreCase & { mode: GpuMode };

export function gpuCaseArb(t: Parameters<Property<unknown>['arbitrary']>[0], sizes: Parameters<Property<unknown>['arbitrary']>[1]): fc.Arbitrary<GpuCase> {
  return fc.record({ c: coreCaseArb(t.ref.inputs, sizes), mode: gpuModeArb(t.gpu!) }).map(({ c, mode }) => ({ ...c, mode }));
}

export const gpuEqualsReference: Property<GpuCase> = {
  id: 'gpu-equals-reference',
  title: 'GPU forward (recurrent and chunked 16/32/64) equals the float64 reference: outputs and final states',
  needsGpu: true,
  perRule: true,
  applies: (t) => t.gpu !== undefined,
  arbitrary: gpuCaseArb,
  async check(env, t, c) {
    const ref = momForward(t.ref, c.cfg, c.x, { initial: c.initial });
    const got = await checkedForward(env.ctx!, t.gpu!, c.cfg, c.x, { ...forwardMode(c.mode), initial: c.initial });
    const tol = gpuTolerance(t.name);
    return compareOutcome(forwardPairs(ref, got), tol, { context: c.mode });
  },
  describe: (c) => c,
};
