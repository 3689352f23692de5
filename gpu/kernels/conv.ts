/**
 * The layer's short convolution (docs/spec.md §6.3) in the gathered layout: causal, depthwise, then SiLU,
 * over each segment's own subsequence. A segment s = slot*B + b is one memory's tokens of one
 * sequence, so looking back stays inside the segment; before its first position the conv reads
 * the segment's cache (the last W-1 inputs of that memory from earlier calls; zeros at the start).
 *
 *   y[p, c] = silu( sum_i w[c, i] * u(rel - (W-1) + i) ),  rel = p - cu[s]
 *   u(r) = x[cu[s] + r, c] for r >= 0, else cache[s, c, W-1 + r]
 *
 * Cache layout [S, C, W-1], oldest first (= reference/layer.ts's [slot, B, C, W-1]). A second
 * kernel then moves the cache to the last W-1 inputs of the segment (keeping old entries when the
 * segment is shorter than W-1); it runs after the conv, in a later dispatch.
 */
import type { GpuContext } from '../device.js';
import { uniforms } from '../buffers.js';
import { LINEAR_WORKGROUP, bindAll, simpleKernel, threadGrid, type Prepared } from '../grid.js';

const WG = 256;

const params = 'struct Params { n: u32, C: u32, W: u32, T: u32 }';

export const convWgsl = /* wgsl */ `${params}
@group(0) @binding(0) var<storage, read> cu: array<u32>;          // [S+1]
@group(0) @binding(1) var<storage, read> origin: array<u32>;      // [P]: s*T + t
@group(0) @binding(2) var<storage, read> x: array<f32>;           // [P, C]
@group(0) @binding(3) var<storage, read> w: array<f32>;           // [C, 1, W]
@group(0) @binding(4) var<storage, read> cache: array<f32>;       // [S, C, W-1]
@group(0) @binding(5) var<storage, read_write> y: array<f32>;     // [P, C]
@group(0) @binding(6) var<uniform> P: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (${LINEAR_WORKGROUP}) * ${WG}u + lid;  // p*C + c
  if (i >= P.n) { return; }
  let p = i / P.C;
  let c = i % P.C;
  let s = origin[p] / P.T;
  let rel = i32(p - cu[s]);
  let h = i32(P.W) - 1;
  var acc = 0.0;
  for (var j = 0; j <= h; j++) {
    let r = rel - h + j;
    var u = 0.0;
    if (r >= 0) { u = x[(cu[s] + u32(r)) * P.C + c]; }
    else { u = cache[(s * P.C + c) * u32(h) + u32(h + r)]; }
    acc += w[c * P.W + u32(j)] * u;
  }
  y[i] = acc / (1.0 + exp(-acc));
}`;

export const convCacheWgsl = /* wgsl */ `${params}
@group(0) @binding(0) var<storage, read> cu: array<u32>;          // [S+1]
@group(0) @binding(1) var<storage, read> x: array<f32>;           // [P, C]
@group(0) @binding(2) var<storage, read_write> cache: array<f32>; // [S, C, W-1]
@group(0) @binding(3) var<uniform> P: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (${LINEAR_WORKGROUP}) * ${WG}u + lid;  // s*C + c
  if (i >= P.n) { return; }
  let s = i / P.C;
  let c = i % P.C;
  let n = i32(cu[s + 1u] - cu[s]);
  let h = i32(P.W) - 1;
  // increasing j: entry j reads old entry j+n > j before anyone overwrites it
  for (var j = 0; j < h; j++) {
    let r = n - h + j;
    if (r >= 0) { cache[i * u32(h) + u32(j)] = x[(cu[s] + u32(r)) * P.C + c]; }
    else { cache[i * u32(h) + u32(j)] = cache[i * u32(h) + u32(j + n)]; }
  }
}`;

export interface ConvDims {
  /** gathered positions */
  P: number;
  /** segments */
  S: number;
  /** channels */
  C: number;
  /** kernel width */
  W: number;
  /** tokens per sequence (origin = s*T + t) */
  T: number;
}

export interface ConvBuffers {
  cu: GPUBuffer;
  origin: GPUBuffer;
  x: GPUBuffer;
  w: GPUBuffer;
  cache: GPUBuffer;
  y: GPUBuffer;
}

/** conv (reading the cache) and, separately, the cache update: encode `conv` for all of q, k, v before any `update`. */
export function prepareConv(ctx: GpuContext, label: string, d: ConvDims, b: ConvBuffers): { conv: Prepared; update: Prepared } {
  const n = d.P * d.C;
  const p1 = uniforms(ctx, `${label} params`, [n, d.C, d.W, d.T]);
  const p2 = uniforms(ctx, `${label} cache params`, [d.S * d.C, d.C, d.W, d.T]);
  const convP = ctx.pipeline('short conv', convWgsl);
  const cacheP = ctx.pipeline('short conv cache', convCacheWgsl);
  return {
    conv: simpleKernel(convP, bindAll(ctx.device, label, convP, [b.cu, b.origin, b.x, b.w, b.cache, b.y, p1]), threadGrid(ctx.limits, n, WG, label), [p1]),
    update: simpleKernel(cacheP, bindAll(ctx.device, `${label} cache`, cacheP, [b.cu, b.x, b.cache, p2]), threadGrid(ctx.limits, d.S * d.C, WG, `${label} cache`), [p2]),
  };
}
