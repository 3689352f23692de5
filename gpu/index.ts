/**
 * The GPU side of momlab in one import: the device, the MoM forward and its debugging hooks,
 * constant-state decode, and the per-rule kernels.
 */
export { getGpu, withErrorScope, type GpuContext } from './device.js';
export { gpuMomForward, gpuRoute, gpuGather, checkForwardLimits, forwardBuffers, type ForwardOptions, type GpuState } from './mom.js';
export { GpuMomState, type GpuMomStateOptions } from './decode.js';
export { GPU_RULES, getGpuRule } from './kernels/index.js';
export { CHUNK_SIZES, type ChunkSize, type GpuRule, type KernelMode, type RuleBuffers, type RuleDims, type RuleRunOptions } from './kernels/types.js';
