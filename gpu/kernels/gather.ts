/**
 * The stable gather (docs/spec.md §4, gathered form): tokens sorted by memory, time order kept inside a
 * memory, in fla's varlen layout. Segment s = e*B + b holds the tokens of batch b routed to
 * memory e (slot e = E is the shared memory: every token of b, so its segment is just t).
 *
 * Stability without a sort: a token's position inside its segment is its *rank*, the number of
 * earlier tokens of the same batch routed to the same memory, i.e. an exclusive prefix sum over
 * t of the 0/1 indicator "t chose e". One workgroup per (e, b) scans that indicator tile by tile
 * (a workgroup scan per tile plus a running base), which is parallel over t inside a tile and
 * deterministic, and equals time order by construction. Then:
 *   offsets: cu[s+1] = cu[s] + count(s) (one small scan over the S segments),
 *   scatter: slot[b,t,j] = cu[e*B+b] + rank, origin[slot] = (e*B+b)*T + t,
 *   rows:    copy each input row into the gathered layout through `origin` (ForwardPlan copies
 *            only the routed positions: the shared memory's segment b is positions B·T·k + b·T + t,
 *            its inputs' own order, and is uploaded there directly).
 *
 * `origin[p]` indexes the token row of position p in the inputs uploaded as [E(+1), B, T, ...];
 * origin % (B*T) is its row of q [B, T, ...] and origin % T its time t.
 */
import type { GpuContext } from '../device.js';
import { uniforms } from '../buffers.js';
import { LINEAR_WORKGROUP, bindAll, gridFor, simpleKernel, threadGrid, type Prepared } from '../grid.js';

const SCAN = 256;
const WG = 256;

/** Inclusive Hillis-Steele scan of `scan[0..SCAN)` in workgroup memory (uniform control flow). */
const workgroupScan = /* wgsl */ `
  for (var off = 1u; off < ${SCAN}u; off = off << 1u) {
    var v = 0u;
    if (lid >= off) { v = scan[lid - off]; }
    workgroupBarrier();
    scan[lid] += v;
    workgroupBarrier();
  }`;

/** Ranks and counts: one workgroup per routed segment (e < E, b < B). */
export function rankWgsl(K: number): string {
  return /* wgsl */ `
const K = ${K}u;
struct Params { B: u32, T: u32, E: u32 }
@group(0) @binding(0) var<storage, read> indices: array<u32>;     // [B, T, K]
@group(0) @binding(1) var<storage, read_write> rank: array<u32>;  // [B, T, K]
@group(0) @binding(2) var<storage, read_write> counts: array<u32>; // [E*B]
@group(0) @binding(3) var<uniform> P: Params;
var<workgroup> scan: array<u32, ${SCAN}>;

@compute @workgroup_size(${SCAN})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let s = ${LINEAR_WORKGROUP};
  // workgroup-uniform exit: s depends on the workgroup only
  if (s >= P.E * P.B) { return; }
  let e = s / P.B;
  let b = s % P.B;
  var base = 0u;
  for (var t0 = 0u; t0 < P.T; t0 += ${SCAN}u) {
    let t = t0 + lid;
    var hit = 0u;
    var jhit = 0u;
    if (t < P.T) {
      for (var j = 0u; j < K; j++) {
        if (indices[(b * P.T + t) * K + j] == e) { hit = 1u; jhit = j; }
      }
    }
    scan[lid] = hit;
    workgroupBarrier();
    ${workgroupScan}
    if (hit == 1u) { rank[(b * P.T + t) * K + jhit] = base + scan[lid] - 1u; }
    base += scan[${SCAN - 1}u];
    workgroupBarrier();
  }
  if (lid == 0u) { counts[s] = base; }
}`;
}

/** cu[0] = 0, cu[s+1] = cu[s] + count(s); shared segments (s >= E*B) count T. One workgroup. */
export const offsetsWgsl = /* wgsl */ `
struct Params { B: u32, T: u32, E: u32, S: u32 }
@group(0) @binding(0) var<storage, read> counts: array<u32>;  // [E*B]
@group(0) @binding(1) var<storage, read_write> cu: array<u32>; // [S+1]
@group(0) @binding(2) var<uniform> P: Params;
var<workgroup> scan: array<u32, ${SCAN}>;

@compute @workgroup_size(${SCAN})
fn main(@builtin(local_invocation_index) lid: u32) {
  var base = 0u;
  if (lid == 0u) { cu[0] = 0u; }
  for (var s0 = 0u; s0 < P.S; s0 += ${SCAN}u) {
    let s = s0 + lid;
    var c = 0u;
    if (s < P.S) { c = select(P.T, counts[s], s < P.E * P.B); }
    scan[lid] = c;
    workgroupBarrier();
    ${workgroupScan}
    if (s < P.S) { cu[s + 1u] = base + scan[lid]; }
    base += scan[${SCAN - 1}u];
    workgroupBarrier();
  }
}`;

/** Turn ranks into positions (in place: rank becomes slot) and record each position's origin. */
export function scatterWgsl(K: number, shared: boolean): string {
  return /* wgsl */ `
const K = ${K}u;
const SHARED = ${shared};
struct Params { B: u32, T: u32, E: u32 }
@group(0) @binding(0) var<storage, read> indices: array<u32>;       // [B, T, K]
@group(0) @binding(1) var<storage, read_write> slot: array<u32>;    // [B, T, K]: rank in, position out
@group(0) @binding(2) var<storage, read> cu: array<u32>;            // [S+1]
@group(0) @binding(3) var<storage, read_write> origin: array<u32>;  // [P]
@group(0) @binding(4) var<uniform> P: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let tok = (${LINEAR_WORKGROUP}) * ${WG}u + lid;  // b*T + t
  if (tok >= P.B * P.T) { return; }
  let b = tok / P.T;
  let t = tok % P.T;
  for (var j = 0u; j < K; j++) {
    let e = indices[tok * K + j];
    let pos = cu[e * P.B + b] + slot[tok * K + j];
    slot[tok * K + j] = pos;
    origin[pos] = (e * P.B + b) * P.T + t;
  }
  if (SHARED) {
    origin[cu[P.E * P.B + b] + t] = (P.E * P.B + b) * P.T + t;
  }
}`;
}

/**
 * dst[p, r] = scale * src[(origin[p] % rows) * width + r] for r < width. With `lanes` = 4 each
 * thread moves a vec4 (width a multiple of 4): a quarter of the threads and of the index
 * arithmetic for the same bytes, which is what this memory-bound copy spends its time on.
 * `width` and `n` are then counted in vec4s.
 */
export function rowsWgsl(lanes: 1 | 4): string {
  const T = lanes === 4 ? 'vec4<f32>' : 'f32';
  return /* wgsl */ `
struct Params { n: u32, width: u32, rows: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> origin: array<u32>;       // [P]
@group(0) @binding(1) var<storage, read> src: array<${T}>;         // [rows, width]
@group(0) @binding(2) var<storage, read_write> dst: array<${T}>;   // [P, width]
@group(0) @binding(3) var<uniform> P: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (${LINEAR_WORKGROUP}) * ${WG}u + lid;
  if (i >= P.n) { return; }
  let p = i / P.width;
  let r = i % P.width;
  dst[i] = P.scale * src[(origin[p] % P.rows) * P.width + r];
}`;
}

export interface GatherDims {
  B: number;
  T: number;
  E: number;
  K: number;
  shared: boolean;
}

export interface GatherBuffers {
  indices: GPUBuffer; // u32 [B, T, K]
  slot: GPUBuffer; // u32 [B, T, K]
  counts: GPUBuffer; // u32 [E*B]
  cu: GPUBuffer; // u32 [S+1]
  origin: GPUBuffer; // u32 [P]
}

export const segmentsOf = (d: GatherDims): number => (d.E + (d.shared ? 1 : 0)) * d.B;
export const positionsOf = (d: GatherDims): number => d.B * d.T * (d.K + (d.shared ? 1 : 0));

/** rank -> offsets -> scatter, compiled and bound once. */
export function prepareGather(ctx: GpuContext, d: GatherDims, b: GatherBuffers): Prepared {
  const S = segmentsOf(d);
  const dims = uniforms(ctx, 'gather params', [d.B, d.T, d.E, S]);
  const rankP = ctx.pipeline(`gather rank k${d.K}`, rankWgsl(d.K));
  const offP = ctx.pipeline('gather offsets', offsetsWgsl);
  const scatP = ctx.pipeline(`gather scatter k${d.K}`, scatterWgsl(d.K, d.shared));
  const kernels = [
    simpleKernel(rankP, bindAll(ctx.device, 'gather rank', rankP, [b.indices, b.slot, b.counts, dims]), gridFor(ctx.limits, d.E * d.B, 'gather rank'), []),
    simpleKernel(offP, bindAll(ctx.device, 'gather offsets', offP, [b.counts, b.cu, dims]), { x: 1, y: 1 }, []),
    simpleKernel(scatP, bindAll(ctx.device, 'gather scatter', scatP, [b.indices, b.slot, b.cu, b.origin, dims]), threadGrid(ctx.limits, d.B * d.T, WG, 'gather scatter'), []),
  ];
  return {
    owned: [dims],
    encode(pass) {
      for (const k of kernels) k.encode(pass);
    },
  };
}

/** Copy the rows of `src` ([rows, width]) to `dst` ([P, width]) in gathered order, times `scale`. */
export function prepareRows(ctx: GpuContext, label: string, P: number, width: number, rows: number, scale: number, origin: GPUBuffer, src: GPUBuffer, dst: GPUBuffer): Prepared {
  const lanes = width % 4 === 0 ? 4 : 1;
  const n = (P * width) / lanes;
  const params = uniforms(ctx, `${label} params`, [n, width / lanes, rows, scale], [3]);
  const pipeline = ctx.pipeline(`gather rows x${lanes}`, rowsWgsl(lanes));
  return simpleKernel(pipeline, bindAll(ctx.device, label, pipeline, [origin, src, dst, params]), threadGrid(ctx.limits, n, WG, label), [params]);
}
