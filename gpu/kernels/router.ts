/**
 * The router on the GPU (docs/spec.md §2), mirroring reference/router.ts: per token, softmax over the E
 * logits with the max subtracted, the top-k (ties to the lower index, ordered by descending p
 * then ascending index), and the routed weights renormalised over the k chosen memories.
 *
 * Outputs: indices u32 [N, k] and weights f32 [N, k], N = B*T tokens.
 */
import type { GpuContext } from '../device.js';
import { uniforms } from '../buffers.js';
import { LINEAR_WORKGROUP, bindAll, simpleKernel, threadGrid, type Prepared } from '../grid.js';

const WG = 64;

/** WGSL of the router for E memories and top-k; one thread per token. */
export function routerWgsl(E: number, K: number): string {
  return /* wgsl */ `
const E = ${E}u;
const K = ${K}u;
struct Params { n: u32 }
@group(0) @binding(0) var<storage, read> logits: array<f32>;       // [N, E]
@group(0) @binding(1) var<storage, read_write> indices: array<u32>; // [N, K]
@group(0) @binding(2) var<storage, read_write> weights: array<f32>; // [N, K]
@group(0) @binding(3) var<uniform> P: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let tok = (${LINEAR_WORKGROUP}) * ${WG}u + lid;
  if (tok >= P.n) { return; }
  var z: array<f32, E>;
  var m = logits[tok * E];
  for (var e = 0u; e < E; e++) { z[e] = logits[tok * E + e]; m = max(m, z[e]); }
  // Top-k by the logits rather than by the rounded probabilities: p is strictly increasing in
  // z, so the order is the same as docs/spec.md §2's, but float32 exp could turn two close logits into a
  // tie that float64 does not have. Strict '>' while scanning upwards sends ties to the lower
  // index, and picking the maxima one after another orders them by descending p.
  var taken: array<bool, E>;
  var chosen: array<u32, K>;
  var p: array<f32, K>;
  var sum = 0.0;
  for (var j = 0u; j < K; j++) {
    var best = E;
    for (var e = 0u; e < E; e++) {
      if (!taken[e] && (best == E || z[e] > z[best])) { best = e; }
    }
    taken[best] = true;
    chosen[j] = best;
    // softmax numerator exp(z - max) <= 1; the softmax denominator cancels in the
    // renormalisation over the chosen k, so it is never formed.
    p[j] = exp(z[best] - m);
    sum += p[j];
  }
  for (var j = 0u; j < K; j++) {
    indices[tok * K + j] = chosen[j];
    weights[tok * K + j] = p[j] / sum;
  }
}`;
}

export interface RouterBuffers {
  logits: GPUBuffer;
  indices: GPUBuffer;
  weights: GPUBuffer;
}

/** Compile (cached) and bind once; `encode` records the dispatch into a pass. */
export function prepareRouter(ctx: GpuContext, tokens: number, E: number, K: number, b: RouterBuffers): Prepared {
  const pipeline = ctx.pipeline(`router E${E} k${K}`, routerWgsl(E, K));
  const params = uniforms(ctx, 'router params', [tokens]);
  const bindGroup = bindAll(ctx.device, 'router', pipeline, [b.logits, b.indices, b.weights, params]);
  return simpleKernel(pipeline, bindGroup, threadGrid(ctx.limits, tokens, WG, 'router'), [params]);
}
