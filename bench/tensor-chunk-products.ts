/**
 * The chunked algorithm's products are small: per chunk, a 64 x 64 matrix (the inverse A) times a
 * 64 x 128 one (e.g. W = A (β e^G K), U = A (β V)). bench/tensor-cores.ts shows float32 emulated
 * on int8 tensor cores beating float32 FMAs on a 4096³ product; this tool asks the same of
 * chunk-sized products, with everything the emulation costs inside the kernel:
 *   tensor: per chunk, row / column power-of-two scales, three int8 digits per value packed
 *           into workgroup memory, 6 digit products per tile on subgroup matrices, the three
 *           int32 levels combined into float32 (two layouts of that work, see below);
 *   simt:   the same product with float32 FMAs: A and X in workgroup memory, 8 x 8 outputs per
 *           thread (the register tiling of momlab's prepare).
 * Both read A and X and write the product once, so the memory traffic is the same:
 *   npx tsx bench/tensor-chunk-products.ts [--chunks 12288] [--out DIR]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHUNK as C, chunkProductInputs, KEY_DIM as D } from './chunk-product-inputs.js';
import { timeDispatch, unsafeApisAdapter } from './probe-device.js';
import { median } from './timer.js';

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
/** 12,288 = the standard shape's chunks: 4 x 8192 tokens x 3 memory visits / 64, times 8 heads. */
const chunks = Number(arg('chunks', '12288'));
const outDir = arg('out', '');

/**
 * W_c = A_c X_c per chunk, float32 FMAs; 128 threads, X in two halves of 64 columns (32 KiB of
 * workgroup memory in all, within lavapipe's limit), each thread 8 rows x 4 columns of a half.
 */
export const simtChunkProductWgsl = /* wgsl */ `
@group(0) @binding(0) var<storage, read> a: array<vec4f>;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> w: array<vec4f>;
var<workgroup> sa: array<vec4f, ${(C * C) / 4}>;       // A row-major
var<workgroup> sx: array<vec4f, ${(C * C) / 4}>;       // 64 columns of X, row-major
@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let ch = wg.x;
  for (var e = li; e < ${(C * C) / 4}u; e += 128u) { sa[e] = a[ch * ${(C * C) / 4}u + e]; }
  let r0 = (li / 16u) * 8u;      // 8 rows
  let q = li % 16u;              // one column quad of the half
  for (var half = 0u; half < 2u; half++) {
    workgroupBarrier();
    for (var e = li; e < ${(C * C) / 4}u; e += 128u) { sx[e] = x[ch * ${(C * D) / 4}u + (e / 16u) * ${D / 4}u + half * 16u + e % 16u]; }
    workgroupBarrier();
    var acc: array<vec4f, 8>;
    for (var i = 0u; i < 8u; i++) { acc[i] = vec4f(0.0); }
    for (var k = 0u; k < ${C}u; k += 4u) {
      var av: array<vec4f, 8>;
      for (var i = 0u; i < 8u; i++) { av[i] = sa[((r0 + i) * ${C}u + k) / 4u]; }
      for (var kk = 0u; kk < 4u; kk++) {
        let xv = sx[(k + kk) * 16u + q];
        for (var i = 0u; i < 8u; i++) { acc[i] = fma(vec4f(av[i][kk]), xv, acc[i]); }
      }
    }
    for (var i = 0u; i < 8u; i++) { w[ch * ${(C * D) / 4}u + (r0 + i) * ${D / 4}u + half * 16u + q] = acc[i]; }
  }
}`;

/**
 * The same product on int8 subgroup matrices (i8 16 x 16 x 32). Workgroup memory holds the
 * digits (A: 3 x 64 x 64 bytes row-major; X transposed: 3 x 128 x 64 bytes, the column-major B
 * that int8 MMA takes), then the int32 results of one level at a time.
 * `layout` 'rows' (run 40): thread li cuts 8 quads of A and 16 of X^T (4 rows apart: strided
 * global reads), maxima by workgroup atomics, and combines 64 consecutive outputs of one row.
 * 'columns': thread li owns column li of X and of W (coalesced reads and writes, the column's
 * maximum without atomics); A's rows are cut by thread pairs (a subgroup shuffle for the max).
 */
export function tensorChunkProductWgsl(layout: 'rows' | 'columns'): string {
  const common = `enable chromium_experimental_subgroup_matrix;
enable subgroups;
diagnostic(off, subgroup_matrix_uniformity);
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
const DA = ${3 * C * C}u;                     // bytes of A's digits
var<workgroup> sm: array<i32, ${(3 * C * C + 3 * D * C) / 4}>;   // digits, later one level of int32 results
// the digits of v * 2^-e (|.| < 1): sign * (d0, d1, d2), d2 rounded
fn digits(v: f32, e: i32) -> vec3i {
  var m = ldexp(abs(v), -e) * 128.0;
  let d0 = floor(m); m = (m - d0) * 128.0;
  let d1 = floor(m); m = (m - d1) * 128.0;
  let d2 = min(round(m), 127.0);
  return vec3i(vec3f(d0, d1, d2) * sign(v));
}
fn pack4(a: i32, b: i32, c: i32, d: i32) -> i32 {
  return (a & 0xff) | ((b & 0xff) << 8u) | ((c & 0xff) << 16u) | ((d & 0xff) << 24u);
}
// exponent e with max * 2^-e < 1 from the float bits of the max (0 for an all-zero line)
fn scaleExp(bits: u32) -> i32 {
  if (bits == 0u) { return 0; }
  return i32((bits >> 23u) & 0xffu) - 126;
}`;
  if (layout === 'rows') {
    return `${common}
var<workgroup> mx: array<atomic<u32>, ${C + D}>;  // max |.| bits: rows of A, then columns of X
@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32) {
  let ch = wg.x;
  if (li < ${C + D}u - 128u) { atomicStore(&mx[128u + li], 0u); }
  atomicStore(&mx[li], 0u);
  workgroupBarrier();
  // each thread: 8 quads of A (row i, k..k+3) and 16 quads of X^T (column j, k..k+3)
  var qa: array<vec4f, 8>;
  var qx: array<vec4f, 16>;
  for (var u = 0u; u < 8u; u++) {
    let q = li + u * 128u; let i = q / 16u; let k = (q % 16u) * 4u;
    let base = ch * ${C * C}u + i * ${C}u + k;
    qa[u] = vec4f(a[base], a[base + 1u], a[base + 2u], a[base + 3u]);
    let m = max(max(abs(qa[u].x), abs(qa[u].y)), max(abs(qa[u].z), abs(qa[u].w)));
    atomicMax(&mx[i], bitcast<u32>(m));
  }
  for (var u = 0u; u < 16u; u++) {
    let q = li + u * 128u; let j = q / 16u; let k = (q % 16u) * 4u;
    let base = ch * ${C * D}u + k * ${D}u + j;
    qx[u] = vec4f(x[base], x[base + ${D}u], x[base + ${2 * D}u], x[base + ${3 * D}u]);
    let m = max(max(abs(qx[u].x), abs(qx[u].y)), max(abs(qx[u].z), abs(qx[u].w)));
    atomicMax(&mx[${C}u + j], bitcast<u32>(m));
  }
  workgroupBarrier();
  for (var u = 0u; u < 8u; u++) {
    let q = li + u * 128u; let i = q / 16u; let k = (q % 16u) * 4u;
    let e = scaleExp(atomicLoad(&mx[i]));
    let d0 = digits(qa[u].x, e); let d1 = digits(qa[u].y, e); let d2 = digits(qa[u].z, e); let d3 = digits(qa[u].w, e);
    for (var s = 0u; s < 3u; s++) { sm[(s * ${C * C}u + i * ${C}u + k) / 4u] = pack4(d0[s], d1[s], d2[s], d3[s]); }
  }
  for (var u = 0u; u < 16u; u++) {
    let q = li + u * 128u; let j = q / 16u; let k = (q % 16u) * 4u;
    let e = scaleExp(atomicLoad(&mx[${C}u + j]));
    let d0 = digits(qx[u].x, e); let d1 = digits(qx[u].y, e); let d2 = digits(qx[u].z, e); let d3 = digits(qx[u].w, e);
    for (var s = 0u; s < 3u; s++) { sm[(DA + s * ${D * C}u + j * ${C}u + k) / 4u] = pack4(d0[s], d1[s], d2[s], d3[s]); }
  }
  workgroupBarrier();
  // subgroup sg: rows r0..r0+31, columns c0..c0+63 (2 x 4 tiles of 16 x 16)
  let r0 = (sg / 2u) * 32u;
  let c0 = (sg % 2u) * 64u;
  ${mmaBody()}
  var res: array<f32, 64>;  // this thread: row li / 2, columns (li % 2) * 64 ..
  ${[0, 1, 2].map((l) => `workgroupBarrier();
  ${storeLevel(l)}
  workgroupBarrier();
  for (var u = 0u; u < 64u; u++) { res[u] += f32(sm[(li / 2u) * ${D}u + (li % 2u) * 64u + u]) * ${2 ** (-7 * (l + 2))}; }`).join('\n  ')}
  let ea = scaleExp(atomicLoad(&mx[li / 2u]));
  for (var u = 0u; u < 64u; u++) {
    let j = (li % 2u) * 64u + u;
    w[ch * ${C * D}u + (li / 2u) * ${D}u + j] = ldexp(res[u], ea + scaleExp(atomicLoad(&mx[${C}u + j])));
  }
}`;
  }
  return `${common}
var<workgroup> ea: array<i32, ${C}>;   // row exponents of A
@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32) {
  let ch = wg.x;
  // A: thread pair (2i, 2i+1) cuts row i, 32 values each; the row max over the pair by a shuffle
  let i = li / 2u;
  let k0 = (li % 2u) * 32u;
  var qa: array<vec4f, 8>;
  var ma = 0.0;
  for (var u = 0u; u < 8u; u++) {
    let base = ch * ${C * C}u + i * ${C}u + k0 + u * 4u;
    qa[u] = vec4f(a[base], a[base + 1u], a[base + 2u], a[base + 3u]);
    ma = max(ma, max(max(abs(qa[u].x), abs(qa[u].y)), max(abs(qa[u].z), abs(qa[u].w))));
  }
  ma = max(ma, subgroupShuffleXor(ma, 1u));
  let eA = scaleExp(bitcast<u32>(ma));
  if (li % 2u == 0u) { ea[i] = eA; }
  for (var u = 0u; u < 8u; u++) {
    let d0 = digits(qa[u].x, eA); let d1 = digits(qa[u].y, eA); let d2 = digits(qa[u].z, eA); let d3 = digits(qa[u].w, eA);
    for (var s = 0u; s < 3u; s++) { sm[(s * ${C * C}u + i * ${C}u + k0 + u * 4u) / 4u] = pack4(d0[s], d1[s], d2[s], d3[s]); }
  }
  // X: thread li owns column li (coalesced: consecutive threads, consecutive columns)
  var qx: array<f32, ${C}>;
  var mxv = 0.0;
  for (var k = 0u; k < ${C}u; k++) { qx[k] = x[ch * ${C * D}u + k * ${D}u + li]; mxv = max(mxv, abs(qx[k])); }
  let eX = scaleExp(bitcast<u32>(mxv));
  for (var k = 0u; k < ${C}u; k += 4u) {
    let d0 = digits(qx[k], eX); let d1 = digits(qx[k + 1u], eX); let d2 = digits(qx[k + 2u], eX); let d3 = digits(qx[k + 3u], eX);
    for (var s = 0u; s < 3u; s++) { sm[(DA + s * ${D * C}u + li * ${C}u + k) / 4u] = pack4(d0[s], d1[s], d2[s], d3[s]); }
  }
  workgroupBarrier();
  let r0 = (sg / 2u) * 32u;
  let c0 = (sg % 2u) * 64u;
  ${mmaBody()}
  var res: array<f32, ${C}>;  // this thread: column li, rows 0..63
  ${[0, 1, 2].map((l) => `workgroupBarrier();
  ${storeLevel(l)}
  workgroupBarrier();
  for (var r = 0u; r < ${C}u; r++) { res[r] += f32(sm[r * ${D}u + li]) * ${2 ** (-7 * (l + 2))}; }`).join('\n  ')}
  for (var r = 0u; r < ${C}u; r++) { w[ch * ${C * D}u + r * ${D}u + li] = ldexp(res[r], ea[r] + eX); }
}`;
}

/** The subgroup's MMAs: 2 x 4 tiles, 3 levels, the 6 digit pairs, K = 64 in two steps. */
function mmaBody(): string {
  const L = 'subgroup_matrix_left<i8, 32, 16>', R = 'subgroup_matrix_right<i8, 16, 32>', Rt = 'subgroup_matrix_result<i32, 16, 16>';
  const lines: string[] = [];
  for (let l = 0; l < 3; l++) for (let i = 0; i < 2; i++) for (let j = 0; j < 4; j++) lines.push(`var c${l}_${i}_${j}: ${Rt};`);
  for (let kk = 0; kk < C; kk += 32) {
    lines.push('{');
    for (let s = 0; s < 3; s++) for (let i = 0; i < 2; i++) lines.push(`  let a${s}_${i} = subgroupMatrixLoad<${L}>(&sm, ${s * C * C + kk}u + (r0 + ${i * 16}u) * ${C}u, false, ${C}u);`);
    for (let t = 0; t < 3; t++) for (let j = 0; j < 4; j++) lines.push(`  let b${t}_${j} = subgroupMatrixLoad<${R}>(&sm, DA + ${t * D * C + kk}u + (c0 + ${j * 16}u) * ${C}u, true, ${C}u);`);
    for (let s = 0; s < 3; s++) for (let t = 0; s + t < 3; t++) for (let i = 0; i < 2; i++) for (let j = 0; j < 4; j++) {
      lines.push(`  c${s + t}_${i}_${j} = subgroupMatrixMultiplyAccumulate(a${s}_${i}, b${t}_${j}, c${s + t}_${i}_${j});`);
    }
    lines.push('}');
  }
  return lines.join('\n  ');
}

/** One level's int32 tiles into workgroup memory, row-major 64 x 128. */
function storeLevel(l: number): string {
  const out: string[] = [];
  for (let i = 0; i < 2; i++) for (let j = 0; j < 4; j++) out.push(`subgroupMatrixStore(&sm, (r0 + ${i * 16}u) * ${D}u + c0 + ${j * 16}u, c${l}_${i}_${j}, false, ${D}u);`);
  return out.join('\n  ');
}

async function main() {
  const { adapter, toggles } = await unsafeApisAdapter();
  const hasTensor = adapter.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName) && adapter.features.has('subgroups');
  const device = await adapter.requestDevice({
    requiredFeatures: (['chromium-experimental-subgroup-matrix', 'subgroups', 'timestamp-query'] as GPUFeatureName[]).filter((f) => adapter.features.has(f)),
    requiredLimits: {
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxBufferSize: adapter.limits.maxBufferSize,
      maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
    },
  });
  const info = adapter.info;
  const result: Record<string, unknown> = {
    date: new Date().toISOString(),
    adapter: [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' '),
    toggles,
    chunks,
    runs: [] as unknown[],
  };
  const { A, X } = chunkProductInputs(chunks);
  const mk = (data: Float32Array, usage: number) => {
    const buf = device.createBuffer({ size: data.byteLength, usage: usage | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
    return buf;
  };
  const ab = mk(A, GPUBufferUsage.STORAGE), xb = mk(X, GPUBufferUsage.STORAGE);
  const bytes = (A.byteLength + 2 * X.byteLength);
  const flops = chunks * 2 * C * C * D;
  const sampleChunks = Array.from({ length: 8 }, (_, t) => (t * 1543 + 11) % chunks);
  for (const kind of ['simt', 'tensor rows', 'tensor columns'] as const) {
    const row: Record<string, unknown> = { kind };
    if (kind !== 'simt' && !hasTensor) {
      row.skipped = 'no subgroup matrices on this adapter';
      (result.runs as unknown[]).push(row);
      console.log(JSON.stringify(row));
      continue;
    }
    try {
      device.pushErrorScope('validation');
      const module = device.createShaderModule({ code: kind === 'simt' ? simtChunkProductWgsl : tensorChunkProductWgsl(kind === 'tensor rows' ? 'rows' : 'columns') });
      const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
      if (errors.length) throw new Error(`WGSL: ${errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')}`);
      const pipe = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
      const wb = device.createBuffer({ size: X.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
      const rd = device.createBuffer({ size: X.byteLength, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const bg = device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: [ab, xb, wb].map((buffer, binding) => ({ binding, resource: { buffer } })) });
      const err = await device.popErrorScope();
      if (err) throw new Error(`validation: ${err.message}`);
      const times = await timeDispatch(device, pipe, bg, [chunks, 1]);
      const enc = device.createCommandEncoder();
      enc.copyBufferToBuffer(wb, 0, rd, 0, X.byteLength);
      device.queue.submit([enc.finish()]);
      await rd.mapAsync(GPUMapMode.READ);
      const got = new Float32Array(rd.getMappedRange().slice(0));
      rd.unmap();
      // error against float64, relative to the largest |W| of each sampled chunk (docs/spec.md §9 style)
      let worst = 0;
      for (const c of sampleChunks) {
        let num = 0, den = 0;
        for (let i = 0; i < C; i++) for (let j = 0; j < D; j++) {
          let ref = 0;
          for (let k = 0; k < C; k++) ref += A[c * C * C + i * C + k] * X[c * C * D + k * D + j];
          num = Math.max(num, Math.abs(got[c * C * D + i * D + j] - ref));
          den = Math.max(den, Math.abs(ref));
        }
        worst = Math.max(worst, num / den);
      }
      const ms = median(times);
      Object.assign(row, { ms, msRange: [Math.min(...times), Math.max(...times)], tflops: flops / (ms * 1e-3) / 1e12, tbPerS: bytes / (ms * 1e-3) / 1e12, worstRelErr: worst });
      wb.destroy();
      rd.destroy();
    } catch (e) {
      row.error = (e as Error).message;
    }
    console.log(JSON.stringify(row));
    (result.runs as unknown[]).push(row);
  }
  if (outDir) {
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, 'tensor-chunk-products.json'), JSON.stringify(result, null, 2));
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
