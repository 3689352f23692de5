/**
 * momlab's public API in one import.
 *
 *   reference  the float64 executable definition (`docs/spec.md`): router, rules, MoM core, state, trace, layer
 *   gpu        the WebGPU float32 implementation of the same (forward, decode, layer)
 *   properties what must hold between the two, for your own vitest suites (also 'momlab/properties')
 *   rules as text, weights and vectors I/O
 */
export * from '../reference/index.js';
export { ruleFromText, interpretRule, type TextRule } from '../reference/rules/from-text.js';
export { layerForward, emptyLayerState, type LayerState, type LayerOptions, type LayerOutputs } from '../reference/layer.js';
export { MomLayerState } from '../reference/layer-state.js';

export * from '../gpu/index.js';
export { gpuRuleFromText, type TextGpuRule } from '../gpu/kernels/from-text.js';
export { gpuLayerForward, GpuLayerState, GpuLayerWeights } from '../gpu/layer.js';

export { parseLayerConfig, layerParamShapes, LAYER_DEFAULTS, type LayerConfig, type LayerWeights } from '../reference/layer-config.js';
export { readLayerConfig, layerWeightsFrom } from './io/layer-files.js';
export { readSafetensors, writeSafetensors, parseSafetensors, serializeSafetensors, type SafetensorsFile, type Tensor } from './io/safetensors.js';
