/**
 * The property suite, public: use these in your own vitest suites, e.g.
 *
 *   import { assertProperty, builtinTargets, gpuEqualsReference } from '<momlab>/properties/index.js';
 *   it('gpu equals reference', async () => { await assertProperty(gpuEqualsReference, builtinTargets(), { ctx }); });
 *
 * or build cases for your own checks from the arbitraries (generic over any Rule).
 */
import { getGpuRule } from '../gpu/kernels/index.js';
import { RULE_NAMES, getRule } from '../reference/rules/index.js';
import type { RuleTarget } from './types.js';

export * from './types.js';
export * from './arbitraries.js';
export * from './compare.js';
export * from './runner.js';
export * from './assert.js';
export * from './slice.js';
export * from './canary.js';
export * from './gpu-mode.js';
export * from './tolerances.js';
export { REFERENCE_PROPERTIES } from './reference.js';
export { GPU_PROPERTIES } from './gpu.js';
export { routingInvariants, routingCaseArb, type RoutingCase } from './routing.js';
export { refChunkedEqualsRecurrent, gpuChunkedEqualsRecurrent, type RefChunkCase, type GpuChunkCase } from './chunked-vs-recurrent.js';
export { gatheredEqualsDirect, type GatherCase as GatheredCase } from './gathered-vs-direct.js';
export { refMixBeforeEqualsAfter, gpuMixBeforeEqualsAfter } from './mix-before-after.js';
export { inactiveMemoryUnchanged, gpuInactiveMemoryUnchanged, type GpuInactiveCase } from './inactive-unchanged.js';
export { refStateSizeConstant } from './state-size.js';
export { refDecodeEqualsForward, gpuDecodeEqualsForward, decodeCaseArb, type DecodeCase, type GpuDecodeCase } from './decode.js';
export { gpuEqualsReference, gpuCaseArb, type GpuCase } from './gpu-vs-reference.js';
export { gpuGatherStableComplete, type GatherCase } from './gather.js';
export { gpuRelabelInvariant, permutationArb, relabelInputs, relabelRouted, type RelabelCase } from './relabel.js';

/** The built-in rules as targets (reference, its chunked form, and the GPU kernels). */
export function builtinTargets(names: readonly string[] = RULE_NAMES): RuleTarget[] {
  return names.map((name) => {
    const ref = getRule(name);
    return { name, ref, chunked: ref, gpu: getGpuRule(name) };
  });
}
export { stateBounded, measureGrowth, describeGrowth, MAX_DEGREE, type Growth, type GrowthCase } from './state-bounded.js';
export { gpuStaysFinite, type GpuFiniteCase } from './gpu-finite.js';
export { GRADIENT_PROPERTIES, gradientFiniteDifferences, gradientFdProperty, gradientMixBeforeEqualsAfter, gradientDecodeEqualsOnePass } from './gradients.js';
