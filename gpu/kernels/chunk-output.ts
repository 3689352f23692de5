/**
 * `output`, the read-out of docs/spec.md §5 (fla's chunk_fwd_o): with the scan (chunk-scan.ts)
 * writing V' and the state at every chunk start h_c, each chunk's output is independent of the
 * others,
 *     O = (Q ⊙ e^G) h_c + Aqk V'
 * so it runs over all (chunk, head, block of 64 columns) at once instead of inside the sequential
 * scan, where it was the largest phase. One workgroup of 256 threads, thread (t / 16, t % 16) owns a
 * 4 x 4 block of O; both products are chunk-common.ts's tiled products over KT-wide slices of the
 * inner dimension (dk, then the chunk's tokens). Aqk holds stale values past its diagonal, so
 * s > r is masked.
 */
import type { Binding } from './kernel-util.js';
import { bufferOf as x, MAX_CHUNK, tiledKernelPrelude, tiledProduct, TILED_PRODUCT_REGISTERS, type ChunkBuffers, type ChunkForm } from './chunk-common.js';

export function outputKernelWgsl(f: ChunkForm, dk: number): string {
  const sc = f.decay === 'scalar';
  const ch = f.decay === 'channel';
  const rows = [0, 1, 2, 3];
  return /* wgsl */ `${tiledKernelPrelude(dk, outputBindings(f, null), sc ? `var<workgroup> gsh: array<f32, ${MAX_CHUNK}>;` : '')}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) t: u32) {
  let C = params.C;
  let H = params.H;
  let DV = params.DV;
  let NB = (DV + 63u) / 64u;
  let h = wid.z / NB;
  let cb = wid.z % NB;
  let slot = wid.y * nwg.x + wid.x;
  let loc = locate(slot);
  let n = loc.z;
  if (n == 0u) { return; }
  let p0 = loc.y;
  let hb = (slot * H + h) * DK;
  let r0 = (t / 16u) * 4u;
  let col0 = cb * 64u + (t % 16u) * 4u;
  ${sc ? 'if (t < CM) { gsh[t] = select(0.0, G_in[(p0 + min(t, n - 1u)) * H + h], t < n); }' : ''}
${TILED_PRODUCT_REGISTERS}
  // (Q ⊙ e^G) h_c over dk
${tiledProduct(
  'i0',
  'DK',
  { at: (u, i) => `q_in[((p0 + ${u}) * H + h) * DK + ${i}]${ch ? ` * exp(G_in[((p0 + ${u}) * H + h) * DK + ${i}])` : ''}`, ok: (u, i) => `${u} < n && ${i} < DK` },
  { at: (i, c) => `hc_in[(hb + ${i}) * DV + ${c}]`, ok: (i, c) => `${i} < DK && ${c} < DV` },
  'cb * 64u',
)}
  ${sc ? rows.map((k) => `acc${k} *= exp(gsh[min(r0 + ${k}u, CM - 1u)]);`).join(' ') : ''}
  // + Aqk V' over the chunk's tokens (s <= r)
${tiledProduct(
  's0',
  'n',
  { at: (u, i) => `A_in[((p0 + ${u}) * H + h) * C + ${i}]`, ok: (u, i) => `${u} < n && ${i} <= ${u}` },
  { at: (i, c) => `vn_in[((p0 + ${i}) * H + h) * DV + ${c}]`, ok: (i, c) => `${i} < n && ${c} < DV` },
  'cb * 64u',
  'diagonal',
)}
${rows
  .map(
    (k) => `  if (r0 + ${k}u < n) {
    for (var m = 0u; m < 4u; m++) {
      let c = col0 + m;
      if (c < DV) { o_out[((p0 + r0 + ${k}u) * H + h) * DV + c] = acc${k}[m]; }
    }
  }`,
  )
  .join('\n')}
}
`;
}

// Declaration order is the binding order; `b` is null when only the WGSL text is wanted.
export function outputBindings(f: ChunkForm, b: ChunkBuffers | null): Binding[] {
  const list: Binding[] = [
    { name: 'cu', kind: 'read', type: 'array<u32>', buffer: x(b?.cu) },
    { name: 'q_in', kind: 'read', buffer: x(b?.q) },
  ];
  if (f.decay !== 'none') list.push({ name: 'G_in', kind: 'read', buffer: x(b?.G) });
  list.push(
    { name: 'A_in', kind: 'read', buffer: x(b?.A) },
    { name: 'vn_in', kind: 'read', buffer: x(f.delta ? b?.Vn : b?.v) },
    { name: 'hc_in', kind: 'read', buffer: x(b?.Hc) },
    { name: 'o_out', kind: 'read_write', buffer: x(b?.o) },
    { name: 'params', kind: 'uniform', type: 'Params', buffer: x(b?.params) },
  );
  return list;
}
