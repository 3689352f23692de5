/**
 * `wu`, the rest of the UT / WY transform of docs/spec.md §5 for delta rules (reference/rules/chunk.ts's
 * W and U): with A = (I + L)^{-1} strictly lower from `prepare` (chunk-prepare.ts),
 *     W = Y + A Y with Y = (β e^G) ⊙ K   [P,H,dk],     U = Y' + A Y' with Y' = β ⊙ V   [P,H,dv]
 * (the unit diagonal of A added as Y itself). Over all (chunk, head, block of 64 columns) at once,
 * one workgroup of 256 threads each, both in one tiled product (chunk-common.ts's tiledProduct with
 * a second right operand): block cb computes W's columns cb·64.. (where < dk) and U's (where < dv),
 * so each slice of A is staged once for both.
 */
import type { Binding } from './kernel-util.js';
import { bufferOf as x, MAX_CHUNK, SLICE_JS, KT, tiledKernelPrelude, tiledProduct, TILED_PRODUCT_REGISTERS, type ChunkBuffers, type ChunkForm } from './chunk-common.js';

export function wuKernelWgsl(f: ChunkForm, dk: number): string {
  const sc = f.decay === 'scalar';
  const rows = [0, 1, 2, 3];
  const kAt = (i: string, c: string) => `k_in[((p0 + ${i}) * H + h) * DK + ${c}] * ysk[${i}]`;
  const vAt = (i: string, c: string) => `v_in[((p0 + ${i}) * H + h) * DV + ${c}] * ysv[${i}]`;
  return /* wgsl */ `${tiledKernelPrelude(
    dk,
    wuBindings(f, null),
    `var<workgroup> bs2_: array<vec4<f32>, ${KT * 16}>; // U's right slice
var<workgroup> ysk: array<f32, ${MAX_CHUNK}>; // β e^G, W's row scale
var<workgroup> ysv: array<f32, ${MAX_CHUNK}>; // β, U's row scale`,
  )}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) t: u32) {
  let C = params.C;
  let H = params.H;
  let DV = params.DV;
  let NB = (max(DK, DV) + 63u) / 64u;
  let h = wid.z / NB;
  let cb = wid.z % NB;
  let slot = wid.y * nwg.x + wid.x;
  let loc = locate(slot);
  let n = loc.z;
  if (n == 0u) { return; }
  let p0 = loc.y;
  let r0 = (t / 16u) * 4u;
  let col0 = cb * 64u + (t % 16u) * 4u;
  if (t < CM) {
    let pt = (p0 + min(t, n - 1u)) * H + h;
    let b = select(0.0, beta_in[pt], t < n);
    ysv[t] = b;
    ysk[t] = b${sc ? ' * exp(G_in[pt])' : ''};
  }
  workgroupBarrier();
${TILED_PRODUCT_REGISTERS}
${rows.map((k) => `  var acc2${k} = vec4<f32>(0.0);`).join('\n')}
${SLICE_JS.map((j) => `  var nc${j} = 0.0;`).join('\n')}
  // A Y and A Y' over the chunk's tokens (s < r)
${tiledProduct(
  's0',
  'n',
  { at: (u, i) => `Ainv_in[((p0 + ${u}) * H + h) * C + ${i}]`, ok: (u, i) => `${u} < n && ${i} < ${u}` },
  { at: kAt, ok: (i, c) => `${i} < n && ${c} < DK` },
  'cb * 64u',
  'strict',
  { at: vAt, ok: (i, c) => `${i} < n && ${c} < DV` },
)}
  // + Y, then W and U
${rows
  .map(
    (k) => `  if (r0 + ${k}u < n) {
    let r = r0 + ${k}u;
    for (var m = 0u; m < 4u; m++) {
      let c = col0 + m;
      if (c < DK) { W_out[((p0 + r) * H + h) * DK + c] = acc${k}[m] + ${kAt('r', 'c')}; }
      if (c < DV) { U_out[((p0 + r) * H + h) * DV + c] = acc2${k}[m] + ${vAt('r', 'c')}; }
    }
  }`,
  )
  .join('\n')}
}
`;
}

// Declaration order is the binding order; `b` is null when only the WGSL text is wanted.
export function wuBindings(f: ChunkForm, b: ChunkBuffers | null): Binding[] {
  const list: Binding[] = [
    { name: 'cu', kind: 'read', type: 'array<u32>', buffer: x(b?.cu) },
    { name: 'k_in', kind: 'read', buffer: x(b?.k) },
    { name: 'v_in', kind: 'read', buffer: x(b?.v) },
    { name: 'beta_in', kind: 'read', buffer: x(b?.beta) },
  ];
  if (f.decay === 'scalar') list.push({ name: 'G_in', kind: 'read', buffer: x(b?.G) });
  list.push(
    { name: 'Ainv_in', kind: 'read', buffer: x(b?.Ainv) },
    { name: 'W_out', kind: 'read_write', buffer: x(b?.W) },
    { name: 'U_out', kind: 'read_write', buffer: x(b?.U) },
    { name: 'params', kind: 'uniform', type: 'Params', buffer: x(b?.params) },
  );
  return list;
}
