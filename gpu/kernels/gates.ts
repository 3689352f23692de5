/**
 * The layer's gates (docs/spec.md §6.2), per gathered position and head:
 *   beta = sigmoid(b),  g = -exp(A_log[h]) * softplus(a + dt_bias[h]).
 * softplus is x above 20 (as torch) and e^x below -15 (where log(1 + e^x) rounds 1 + e^x to 1
 * in float32 and would lose all relative precision).
 */
import type { GpuContext } from '../device.js';
import { uniforms } from '../buffers.js';
import { LINEAR_WORKGROUP, bindAll, simpleKernel, threadGrid, type Prepared } from '../grid.js';

const WG = 256;

export const gatesWgsl = /* wgsl */ `
struct Params { n: u32, H: u32 }
@group(0) @binding(0) var<storage, read> braw: array<f32>;        // [P, H]
@group(0) @binding(1) var<storage, read> araw: array<f32>;        // [P, H]
@group(0) @binding(2) var<storage, read> A_log: array<f32>;       // [H]
@group(0) @binding(3) var<storage, read> dt_bias: array<f32>;     // [H]
@group(0) @binding(4) var<storage, read_write> beta: array<f32>;  // [P, H]
@group(0) @binding(5) var<storage, read_write> g: array<f32>;     // [P, H]
@group(0) @binding(6) var<uniform> P: Params;

fn softplus(x: f32) -> f32 {
  if (x > 20.0) { return x; }
  if (x < -15.0) { return exp(x); }
  return log(1.0 + exp(x));
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (${LINEAR_WORKGROUP}) * ${WG}u + lid;
  if (i >= P.n) { return; }
  let h = i % P.H;
  beta[i] = 1.0 / (1.0 + exp(-braw[i]));
  g[i] = -exp(A_log[h]) * softplus(araw[i] + dt_bias[h]);
}`;

export function prepareGates(ctx: GpuContext, P: number, H: number, b: { braw: GPUBuffer; araw: GPUBuffer; A_log: GPUBuffer; dt_bias: GPUBuffer; beta: GPUBuffer; g: GPUBuffer }): Prepared {
  const params = uniforms(ctx, 'gates params', [P * H, H]);
  const pipeline = ctx.pipeline('gates', gatesWgsl);
  return simpleKernel(pipeline, bindAll(ctx.device, 'gates', pipeline, [b.braw, b.araw, b.A_log, b.dt_bias, b.beta, b.g, params]), threadGrid(ctx.limits, P * H, WG, 'gates'), [params]);
}
