/**
 * Tiled matmul for the layer's projections (a torch Linear without bias): Y = A W^T with
 * A [rows, K], W [N, K], Y [rows, N]. A workgroup computes a TILE x TILE block of Y, staging
 * TILE x TILE blocks of A and W in workgroup memory so each value is read from storage once per
 * workgroup instead of once per output.
 *
 * Batched over z with row ranges from a `bounds` buffer: batch z covers rows
 * [bounds[z*stride], bounds[(z+1)*stride]) and uses weights W[z] (`wBatch` words apart, 0 for one
 * shared W). With bounds = the gather's `cu` and stride = B, batch z is memory z's gathered rows
 * (segments z*B .. z*B+B-1 are contiguous), so each memory's tokens are projected by its own
 * weights and nothing else is computed. Row tiles past a batch's end exit at once.
 */
import type { GpuContext } from '../device.js';
import { uniforms } from '../buffers.js';
import { bindAll, type Prepared } from '../grid.js';
import { GpuError } from '../../reference/errors.js';

export const TILE = 16;

export const matmulWgsl = /* wgsl */ `
const TILE = ${TILE}u;
struct Params { N: u32, K: u32, stride: u32, wBatch: u32 }
@group(0) @binding(0) var<storage, read> bounds: array<u32>;
@group(0) @binding(1) var<storage, read> A: array<f32>;        // [rows, K]
@group(0) @binding(2) var<storage, read> W: array<f32>;        // [batches, N, K]
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;  // [rows, N]
@group(0) @binding(4) var<uniform> P: Params;
var<workgroup> aT: array<array<f32, ${TILE}>, ${TILE}>;  // [row][k]
var<workgroup> wT: array<array<f32, ${TILE}>, ${TILE}>;  // [col][k]
var<workgroup> range: vec2<u32>;

@compute @workgroup_size(${TILE}, ${TILE})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  if (lid.x == 0u && lid.y == 0u) {
    range = vec2<u32>(bounds[wg.z * P.stride], bounds[(wg.z + 1u) * P.stride]);
  }
  // the same value for the whole workgroup: the early exit keeps control flow uniform
  let r = workgroupUniformLoad(&range);
  let row0 = r.x + wg.y * TILE;
  if (row0 >= r.y) { return; }
  let row = row0 + lid.y;
  let col = wg.x * TILE + lid.x;
  let wcol = wg.x * TILE + lid.y;  // the W row this thread stages
  let wOff = wg.z * P.wBatch;
  var acc = 0.0;
  for (var k0 = 0u; k0 < P.K; k0 += TILE) {
    let k = k0 + lid.x;
    aT[lid.y][lid.x] = select(0.0, A[row * P.K + k], row < r.y && k < P.K);
    wT[lid.y][lid.x] = select(0.0, W[wOff + wcol * P.K + k], wcol < P.N && k < P.K);
    workgroupBarrier();
    for (var kk = 0u; kk < TILE; kk++) { acc += aT[lid.y][kk] * wT[lid.x][kk]; }
    workgroupBarrier();
  }
  if (row < r.y && col < P.N) { Y[row * P.N + col] = acc; }
}`;

export interface MatmulShape {
  /** output columns (W rows) */
  N: number;
  /** inner size */
  K: number;
  /** number of batches (z) */
  batches: number;
  /** the most rows one batch can have (sets the y grid) */
  maxRows: number;
  /** bounds entries between batches */
  stride: number;
  /** words between consecutive W batches; 0 shares one W */
  wBatch: number;
}

export interface MatmulBuffers {
  bounds: GPUBuffer;
  A: GPUBuffer;
  W: GPUBuffer;
  Y: GPUBuffer;
}

export function prepareMatmul(ctx: GpuContext, label: string, s: MatmulShape, b: MatmulBuffers): Prepared {
  const max = ctx.limits.maxComputeWorkgroupsPerDimension;
  const grid = [Math.ceil(s.N / TILE), Math.max(1, Math.ceil(s.maxRows / TILE)), s.batches];
  if (grid.some((g) => g > max)) throw new GpuError(`${label}: a matmul grid of ${grid.join(' x ')} workgroups is over maxComputeWorkgroupsPerDimension = ${max}`);
  const params = uniforms(ctx, `${label} params`, [s.N, s.K, s.stride, s.wBatch]);
  const pipeline = ctx.pipeline('matmul', matmulWgsl);
  const bg = bindAll(ctx.device, label, pipeline, [b.bounds, b.A, b.W, b.Y, params]);
  return {
    owned: [params],
    encode(pass) {
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bg);
      pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
    },
  };
}
