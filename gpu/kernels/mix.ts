/**
 * Scatter back with the routing weights (docs/spec.md §4), one thread per output element (b, t, h, c),
 * consecutive threads on consecutive c so reads of a gathered row are coalesced.
 *
 * after:  o[b,t,h] = sum_j w[b,t,j] * oG[slot[b,t,j], h] + oG[cu[E*B+b] + t, h]
 * before: o[b,t,h] = M~^T (s q[b,t,h]),  M~ = sum_j w[b,t,j] * Hist[slot[b,t,j], h] + Hist[shared pos, h]
 *         (Hist = the state after each token, from the rule's history output). Only valid for a
 *         read-out linear in the state, o = S^T q, which is what this kernel reads out.
 */
import type { GpuContext } from '../device.js';
import { uniforms } from '../buffers.js';
import { LINEAR_WORKGROUP, bindAll, simpleKernel, threadGrid, type Prepared } from '../grid.js';

const WG = 256;

const header = (K: number, shared: boolean, T = 'f32') => /* wgsl */ `
const K = ${K}u;
const SHARED = ${shared};
struct Params { B: u32, T: u32, E: u32, H: u32, dk: u32, dv: u32, n: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> slot: array<u32>;      // [B, T, K] gathered positions
@group(0) @binding(1) var<storage, read> weights: array<f32>;   // [B, T, K]
@group(0) @binding(2) var<storage, read> cu: array<u32>;        // [S+1]
@group(0) @binding(3) var<storage, read_write> o: array<${T}>;  // [B, T, H, dv]
@group(0) @binding(4) var<uniform> P: Params;
`;

/**
 * Mix after the read-out: weighted sum of the memories' own outputs oG [P, H, dv]. With
 * `lanes` = 4 (dv a multiple of 4) a thread handles a vec4 of c and P.dv counts vec4s.
 */
export function mixAfterWgsl(K: number, shared: boolean, lanes: 1 | 4 = 1): string {
  const T = lanes === 4 ? 'vec4<f32>' : 'f32';
  return /* wgsl */ `${header(K, shared, T)}
@group(0) @binding(5) var<storage, read> oG: array<${T}>;      // [P, H, dv]

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (${LINEAR_WORKGROUP}) * ${WG}u + lid;
  if (i >= P.n) { return; }
  let row = P.H * P.dv;
  let tok = i / row;  // b*T + t
  let r = i % row;    // h*dv + c
  var acc = ${T}(0.0);
  for (var j = 0u; j < K; j++) {
    acc += weights[tok * K + j] * oG[slot[tok * K + j] * row + r];
  }
  if (SHARED) {
    let b = tok / P.T;
    let t = tok % P.T;
    acc += oG[(cu[P.E * P.B + b] + t) * row + r];
  }
  o[i] = acc;
}`;
}

/** Mix before the read-out: mix the states after each token, then o = M~^T (s q). */
export function mixBeforeWgsl(K: number, shared: boolean): string {
  return /* wgsl */ `${header(K, shared)}
@group(0) @binding(5) var<storage, read> hist: array<f32>;     // [P, H, dk, dv]
@group(0) @binding(6) var<storage, read> q: array<f32>;        // [B, T, H, dk], times P.scale here

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (${LINEAR_WORKGROUP}) * ${WG}u + lid;
  if (i >= P.n) { return; }
  let tok = i / (P.H * P.dv);
  let h = (i / P.dv) % P.H;
  let c = i % P.dv;
  let b = tok / P.T;
  let t = tok % P.T;
  let state = P.dk * P.dv;
  var pos: array<u32, K>;
  var w: array<f32, K>;
  for (var j = 0u; j < K; j++) { pos[j] = slot[tok * K + j]; w[j] = weights[tok * K + j]; }
  var acc = 0.0;
  for (var d = 0u; d < P.dk; d++) {
    // M~[d, c] for this head
    var m = 0.0;
    for (var j = 0u; j < K; j++) {
      m += w[j] * hist[(pos[j] * P.H + h) * state + d * P.dv + c];
    }
    if (SHARED) {
      m += hist[((cu[P.E * P.B + b] + t) * P.H + h) * state + d * P.dv + c];
    }
    acc += m * (P.scale * q[(tok * P.H + h) * P.dk + d]);
  }
  o[i] = acc;
}`;
}

export interface MixDims {
  B: number;
  T: number;
  E: number;
  K: number;
  H: number;
  dk: number;
  dv: number;
  shared: boolean;
  scale: number;
}

export interface MixBuffers {
  slot: GPUBuffer;
  weights: GPUBuffer;
  cu: GPUBuffer;
  o: GPUBuffer;
  /** after: the memories' outputs [P, H, dv]; before: their states after each token [P, H, dk, dv] */
  gathered: GPUBuffer;
  /** before only: the queries [B, T, H, dk], multiplied by `scale` in the kernel (ForwardPlan scales them on the host and passes 1) */
  q?: GPUBuffer;
}

export function prepareMix(ctx: GpuContext, mix: 'after' | 'before', d: MixDims, b: MixBuffers): Prepared {
  const lanes = mix === 'after' && d.dv % 4 === 0 ? 4 : 1;
  const dv = d.dv / lanes;
  const n = d.B * d.T * d.H * dv;
  const params = uniforms(ctx, `mix ${mix} params`, [d.B, d.T, d.E, d.H, d.dk, dv, n, d.scale], [7]);
  const code = mix === 'after' ? mixAfterWgsl(d.K, d.shared, lanes) : mixBeforeWgsl(d.K, d.shared);
  const pipeline = ctx.pipeline(`mix ${mix}`, code);
  const buffers = [b.slot, b.weights, b.cu, b.o, params, b.gathered];
  if (mix === 'before') buffers.push(b.q!);
  return simpleKernel(pipeline, bindAll(ctx.device, `mix ${mix}`, pipeline, buffers), threadGrid(ctx.limits, n, WG, `mix ${mix}`), [params]);
}
