/**
 * The layer's normalisations (docs/spec.md §6.4, 6.7), one thread per (row, head):
 *  - l2norm: x <- scale * x / sqrt(sum x^2 + 1e-6) per head, in place (q with scale dk^-1/2, k with 1);
 *  - gated RMSNorm: y = o * rsqrt(mean(o^2) + eps) * weight * silu(gate) per head.
 */
import type { GpuContext } from '../device.js';
import { uniforms } from '../buffers.js';
import { LINEAR_WORKGROUP, bindAll, simpleKernel, threadGrid, type Prepared } from '../grid.js';

const WG = 64;

export const l2normWgsl = /* wgsl */ `
struct Params { n: u32, d: u32, scale: f32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;  // [n, d]
@group(0) @binding(1) var<uniform> P: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let r = (${LINEAR_WORKGROUP}) * ${WG}u + lid;
  if (r >= P.n) { return; }
  var ss = 0.0;
  for (var i = 0u; i < P.d; i++) { let v = x[r * P.d + i]; ss += v * v; }
  let f = P.scale / sqrt(ss + 1e-6);
  for (var i = 0u; i < P.d; i++) { x[r * P.d + i] *= f; }
}`;

export const gatedRmsNormWgsl = /* wgsl */ `
struct Params { n: u32, dv: u32, eps: f32 }
@group(0) @binding(0) var<storage, read> o: array<f32>;        // [n, dv] (n = tokens * H)
@group(0) @binding(1) var<storage, read> gate: array<f32>;     // [n, dv]
@group(0) @binding(2) var<storage, read> weight: array<f32>;   // [dv]
@group(0) @binding(3) var<storage, read_write> y: array<f32>;  // [n, dv]
@group(0) @binding(4) var<uniform> P: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let r = (${LINEAR_WORKGROUP}) * ${WG}u + lid;
  if (r >= P.n) { return; }
  var ss = 0.0;
  for (var j = 0u; j < P.dv; j++) { let v = o[r * P.dv + j]; ss += v * v; }
  let rstd = 1.0 / sqrt(ss / f32(P.dv) + P.eps);
  for (var j = 0u; j < P.dv; j++) {
    let g = gate[r * P.dv + j];
    y[r * P.dv + j] = o[r * P.dv + j] * rstd * weight[j] * (g / (1.0 + exp(-g)));
  }
}`;

/** In-place l2norm of `rows` vectors of width `d`, times `scale`. */
export function prepareL2norm(ctx: GpuContext, label: string, rows: number, d: number, scale: number, x: GPUBuffer): Prepared {
  const params = uniforms(ctx, `${label} params`, [rows, d, scale], [2]);
  const pipeline = ctx.pipeline('l2norm', l2normWgsl);
  return simpleKernel(pipeline, bindAll(ctx.device, label, pipeline, [x, params]), threadGrid(ctx.limits, rows, WG, label), [params]);
}

export function prepareGatedRmsNorm(ctx: GpuContext, rows: number, dv: number, eps: number, b: { o: GPUBuffer; gate: GPUBuffer; weight: GPUBuffer; y: GPUBuffer }): Prepared {
  const params = uniforms(ctx, 'gated rmsnorm params', [rows, dv, eps], [2]);
  const pipeline = ctx.pipeline('gated rmsnorm', gatedRmsNormWgsl);
  return simpleKernel(pipeline, bindAll(ctx.device, 'gated rmsnorm', pipeline, [b.o, b.gate, b.weight, b.y, params]), threadGrid(ctx.limits, rows, WG, 'gated rmsnorm'), [params]);
}
