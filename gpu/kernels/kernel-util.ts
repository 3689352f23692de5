/**
 * Helpers shared by the rule kernels (recurrent-template.ts, chunk-*.ts): binding lists
 * that produce both the WGSL declarations and the bind group from one description, checks of
 * the varlen contract (gpu/kernels/types.ts) that turn bad input into typed errors, and caches
 * of the small buffers a kernel needs (uniforms, scratch), so that repeated encodes with the
 * same dims (decode steps) allocate nothing.
 */
import { ConfigError, GpuError, ShapeError } from '../../reference/errors.js';
import { widthOf, type InputDecl } from '../../reference/types.js';
import type { GpuContext } from '../device.js';
import { Usage } from '../buffers.js';
import type { RuleBuffers, RuleDims } from './types.js';

export interface Binding {
  /** the WGSL variable name */
  name: string;
  kind: 'read' | 'read_write' | 'uniform';
  /** WGSL type of the variable (default array<f32>, or array<u32> for cu) */
  type?: string;
  buffer: GPUBuffer;
}

/** `@group(0) @binding(i) var<...> name: type;` for each binding, in order. */
export function declareBindings(list: readonly Binding[]): string {
  return list
    .map((b, i) => {
      const space = b.kind === 'uniform' ? 'uniform' : `storage, ${b.kind}`;
      return `@group(0) @binding(${i}) var<${space}> ${b.name}: ${b.type ?? 'array<f32>'};`;
    })
    .join('\n');
}

/** Record one compute pass with `pipeline`, its bindings in declaration order, over `grid`. */
export function encodePass(
  ctx: GpuContext,
  enc: GPUCommandEncoder,
  label: string,
  pipeline: GPUComputePipeline,
  list: readonly Binding[],
  grid: readonly [number, number, number],
): void {
  const bindGroup = ctx.device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: list.map((b, binding) => ({ binding, resource: { buffer: b.buffer } })),
  });
  const pass = enc.beginComputePass({ label });
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
  pass.end();
}

/** A grid dimension of `n` workgroups, refused with the limit's name when the device cannot hold it. */
export function gridDim(ctx: GpuContext, n: number, what: string): number {
  const max = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (n > max) throw new GpuError(`${what} needs ${n} workgroups in one dimension, over maxComputeWorkgroupsPerDimension = ${max}`);
  return Math.max(1, n);
}

/** Refuse a kernel whose workgroup arrays do not fit the device. */
export function checkWorkgroupBytes(ctx: GpuContext, bytes: number, what: string): void {
  const max = ctx.limits.maxComputeWorkgroupStorageSize;
  if (bytes > max) {
    throw new GpuError(`${what} needs ${bytes} bytes of workgroup memory, over the device limit maxComputeWorkgroupStorageSize = ${max}`);
  }
}

/** Refuse a kernel that binds more storage buffers than the device allows in one shader stage. */
export function checkStorageBindings(ctx: GpuContext, list: readonly Binding[], what: string): void {
  const n = list.filter((b) => b.kind !== 'uniform').length;
  const max = ctx.limits.maxStorageBuffersPerShaderStage;
  if (n > max) throw new GpuError(`${what} binds ${n} storage buffers, over the device limit maxStorageBuffersPerShaderStage = ${max}`);
}

/** The largest head size the kernels hold in per-thread arrays (a state column of dk floats). */
export const MAX_DK = 256;

/**
 * The varlen contract: sizes positive integers (positions may be 0), every buffer large enough
 * for its declared shape, one input buffer per rule input. Errors name the offending item.
 */
export function checkRuleCall(rule: string, inputs: readonly InputDecl[], dims: RuleDims, buffers: RuleBuffers): void {
  const { segments, positions, H, dk, dv } = dims;
  for (const [name, v, min] of [['segments', segments, 1], ['positions', positions, 0], ['H', H, 1], ['dk', dk, 1], ['dv', dv, 1]] as const) {
    if (!Number.isInteger(v) || v < min) throw new ShapeError(`rule '${rule}': dims.${name} must be an integer >= ${min}, got ${v}`);
  }
  const shared = dims.sharedSegments ?? 0;
  if (!Number.isInteger(shared) || shared < 0 || shared > segments) throw new ShapeError(`rule '${rule}': dims.sharedSegments must be an integer in 0..segments (${segments}), got ${shared}`);
  if (dk > MAX_DK) throw new ConfigError(`rule '${rule}': dk = ${dk} is over the largest supported head size ${MAX_DK}`);
  if (buffers.inputs.length !== inputs.length) {
    throw new ShapeError(`rule '${rule}' takes ${inputs.length} inputs (${inputs.map((d) => d.name).join(', ')}), got ${buffers.inputs.length} input buffers`);
  }
  const need = (label: string, buf: GPUBuffer | undefined, words: number) => {
    if (!buf) throw new ShapeError(`rule '${rule}': buffer '${label}' is missing`);
    if (buf.size < words * 4) throw new ShapeError(`rule '${rule}': buffer '${label}' holds ${buf.size} bytes, needs ${words * 4} (${words} values)`);
  };
  need('cu', buffers.cu, segments + 1);
  need('q', buffers.q, positions * H * dk);
  inputs.forEach((d, i) => need(d.name, buffers.inputs[i], positions * H * widthOf(d.width, { dk, dv })));
  need('state', buffers.state, segments * H * dk * dv);
  need('o', buffers.o, positions * H * dv);
  if (buffers.history) need('history', buffers.history, positions * H * dk * dv);
}

// Per-context caches. Uniform contents never change after creation, so a cached one is always
// right for its key; scratch only ever grows, and a grown one replaces the old in the cache (the
// old one stays alive for any encoder still holding it, it is never destroyed under it).
const uniformCache = new WeakMap<GpuContext, Map<string, GPUBuffer>>();
const scratchCache = new WeakMap<GpuContext, Map<string, GPUBuffer>>();
const MAX_UNIFORMS = 256;

function cacheOf(m: WeakMap<GpuContext, Map<string, GPUBuffer>>, ctx: GpuContext): Map<string, GPUBuffer> {
  let c = m.get(ctx);
  if (!c) m.set(ctx, (c = new Map()));
  return c;
}

/** A uniform buffer holding these u32 words, made once per distinct content. */
export function cachedUniform(ctx: GpuContext, words: readonly number[]): GPUBuffer {
  const cache = cacheOf(uniformCache, ctx);
  const key = words.join(',');
  let buf = cache.get(key);
  if (!buf) {
    if (cache.size >= MAX_UNIFORMS) cache.delete(cache.keys().next().value!);
    const n = Math.max(4, Math.ceil(words.length / 4) * 4);
    buf = ctx.createBuffer({ label: `rule-params(${key})`, size: n * 4, usage: Usage.UNIFORM | Usage.COPY_DST, mappedAtCreation: true });
    new Uint32Array(buf.getMappedRange()).set(words);
    buf.unmap();
    cache.set(key, buf);
  }
  return buf;
}

/** A scratch storage buffer of at least `words` floats, shared by all encodes with this `key`. */
export function cachedScratch(ctx: GpuContext, key: string, words: number): GPUBuffer {
  const cache = cacheOf(scratchCache, ctx);
  const bytes = Math.max(16, words * 4);
  let buf = cache.get(key);
  if (!buf || buf.size < bytes) {
    const max = ctx.limits.maxStorageBufferBindingSize;
    if (bytes > max) throw new GpuError(`scratch '${key}' needs ${bytes} bytes, over the device limit maxStorageBufferBindingSize = ${max}`);
    buf = ctx.createBuffer({ label: `scratch:${key}`, size: bytes, usage: Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST });
    cache.set(key, buf);
  }
  return buf;
}

/** The largest power of two <= cap such that `bytesPer * n + fixed` fits in `budget` bytes (0 if none). */
export function fitCount(bytesPer: number, fixed: number, budget: number, cap: number): number {
  let n = cap;
  while (n >= 1 && fixed + n * bytesPer > budget) n >>= 1;
  return n;
}
