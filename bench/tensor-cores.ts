/**
 * Can WGSL reach the tensor cores, and would they help a float32 kernel? (issue 6, round 10)
 *
 * Dawn's experimental `chromium-experimental-subgroup-matrix` feature maps WGSL subgroup
 * matrices to VK_KHR_cooperative_matrix. This tool lists the configurations the adapter offers
 * and, for the int8 one (the only kind the H200's Vulkan driver offers through Dawn 0.6.2),
 * times an n x n x n matmul three ways:
 *   - int8 GEMM: one int8 product, checked exactly against integer arithmetic;
 *   - float32 emulated on int8 (Ozaki-style slicing): every row of A and column of B is scaled by
 *     a power of two to |x| < 1 and cut into three signed base-2^7 digits (21 bits); the six
 *     digit products with level s + t <= 2 are accumulated exactly in int32, one accumulator per
 *     level, and combined on the host. Checked against float64 and against a float32 loop;
 *   - MMA only: the same multiply-accumulates on tiles loaded once, an upper bound for any
 *     kernel built on this lowering (no memory traffic at all).
 * Each in two layouts: `direct` (one subgroup per workgroup, tiles loaded from storage) and
 * `staged` (four subgroups, panels staged through workgroup memory with 16-byte loads), and with
 * B's digits stored by rows or transposed ('col': int8 MMA on NVIDIA takes B column-major, so
 * that load needs no shuffle). The slicing math is bench/int8-slices.ts (tested).
 * Each kernel runs 300 ms back to back before it is timed: without that, the first figures of
 * a process read up to 5x slow while the clocks ramp.
 *
 *   npx tsx bench/tensor-cores-run.ts [--n 4096] [--out DIR]   (every variant; this module has no
 *   entry point of its own, so that bench/gpu.ts can import it into one bundle)
 * On an adapter without the feature (lavapipe) it prints the feature list and stops.
 */
import { cutDigits, digitPairs, joinLevels, scaleExponents } from './int8-slices.js';
import { timeDispatch, unsafeApisAdapter } from './probe-device.js';
import { median } from './timer.js';

export type Config = { componentType: string; resultComponentType: string; M: number; N: number; K: number };
type Layout = 'direct' | 'staged';
export interface Variant {
  what: 'int8 gemm' | 'f32 on int8 (3 slices)' | 'mma only';
  slices: 1 | 3;
  layout: Layout;
  tile: [number, number];
  /** How B's digits are stored: 'col' = transposed (column-major), the layout int8 MMA wants. */
  b: 'row' | 'col';
  /** staged only: K depth of a staged panel (a multiple of the MMA's K; default K) */
  bk?: number;
  /** staged only: rows of subgroups per workgroup (2 x this many subgroups; default 2) */
  sgRows?: number;
  /** staged only: bytes of padding after each staged row (default 0) */
  pad?: number;
  /** staged only: load the next panels into registers during this panel's MMAs */
  prefetch?: boolean;
}

/**
 * WGSL for C_level = sum over kept digit pairs of A_s B_t (int8 in, int32 out). Every matrix is
 * a named value (fully unrolled) so that the compiler keeps it in registers.
 */
export function int8MatmulWgsl(c: Config, v: Variant, size: number): string {
  const [TM, TN] = v.tile;
  const S = v.slices;
  const pairs = digitPairs(S);
  const L = `subgroup_matrix_left<i8, ${c.K}, ${c.M}>`, R = `subgroup_matrix_right<i8, ${c.N}, ${c.K}>`, C = `subgroup_matrix_result<i32, ${c.N}, ${c.M}>`;
  const nn = size * size;
  const staged = v.layout === 'staged';
  const sgRows = staged ? (v.sgRows ?? 2) : 1;
  const threads = 32 * sgRows * (staged ? 2 : 1);
  const BM = sgRows * TM * c.M, BN = (staged ? 2 : 1) * TN * c.N, BK = staged ? (v.bk ?? c.K) : c.K;
  const accs: string[] = [], loads: string[] = [], mmas: string[] = [], stores: string[] = [];
  for (let lv = 0; lv < S; lv++) for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) {
    accs.push(`var c${lv}_${i}_${j}: ${C};`);
    stores.push(`subgroupMatrixStore(&c, ${lv * nn}u + (row0 + ${i * c.M}u) * n + col0 + ${j * c.N}u, c${lv}_${i}_${j}, false, n);`);
  }
  const colB = v.b === 'col';
  // staged panels: A is BM rows of BK bytes, B (column-major) BN rows of BK bytes or (row-major)
  // BK rows of BN bytes; each row padded by `pad` bytes (bank conflicts)
  const pad = staged ? (v.pad ?? 0) : 0;
  const ldA = BK + pad, ldB = colB ? BK + pad : BN + pad;
  const panelA = BM * ldA, panelB = colB ? BN * ldB : BK * ldB;
  // one block of loads and MMAs per MMA-deep step of the panel (kk)
  const stagedSteps: string[] = [];
  for (let kk = 0; kk < BK; kk += c.K) {
    const ls: string[] = [];
    for (let s = 0; s < S; s++) for (let i = 0; i < TM; i++) ls.push(`let a${s}_${i} = subgroupMatrixLoad<${L}>(&wa, ${s * panelA + kk}u + (r0 + ${i * c.M}u) * ${ldA}u, false, ${ldA}u);`);
    for (let t = 0; t < S; t++) for (let j = 0; j < TN; j++) {
      ls.push(colB
        ? `let b${t}_${j} = subgroupMatrixLoad<${R}>(&wb, ${t * panelB + kk}u + (c0 + ${j * c.N}u) * ${ldB}u, true, ${ldB}u);`
        : `let b${t}_${j} = subgroupMatrixLoad<${R}>(&wb, ${t * panelB + kk * ldB}u + c0 + ${j * c.N}u, false, ${ldB}u);`);
    }
    stagedSteps.push(`{\n      ${ls.join('\n      ')}\n      MMAS\n    }`);
  }
  // the staging copy, unrolled: each thread moves its 16-byte pieces of each panel, first into
  // registers (x*), then into workgroup memory. `bind` declares ('let' / 'var') or assigns ('').
  const perA = (BM * BK) / 16, perB = (BK * BN) / 16;
  const piecesA = staged ? (S * perA) / threads : 0, piecesB = staged ? (S * perB) / threads : 0;
  if (staged && (!Number.isInteger(piecesA) || !Number.isInteger(piecesB))) throw new Error(`panels of ${S * perA} / ${S * perB} pieces do not split over ${threads} threads`);
  const fetch = (kExpr: string, bind: 'let' | 'var' | ''): string[] => {
    const out: string[] = [];
    for (let u = 0; u < piecesA; u++) {
      const e = `(li + ${u * threads}u)`;
      out.push(`${bind ? bind + ' ' : ''}xa${u} = a[((${e} / ${perA}u) * ${nn}u + (wg.y * ${BM}u + (${e} % ${perA}u) / ${BK / 16}u) * n + ${kExpr}) / 16u + ${e} % ${BK / 16}u];`);
    }
    for (let u = 0; u < piecesB; u++) {
      const e = `(li + ${u * threads}u)`;
      out.push(colB
        ? `${bind ? bind + ' ' : ''}xb${u} = b[((${e} / ${perB}u) * ${nn}u + (wg.x * ${BN}u + (${e} % ${perB}u) / ${BK / 16}u) * n + ${kExpr}) / 16u + ${e} % ${BK / 16}u];`
        : `${bind ? bind + ' ' : ''}xb${u} = b[((${e} / ${perB}u) * ${nn}u + (${kExpr} + (${e} % ${perB}u) / ${BN / 16}u) * n + wg.x * ${BN}u) / 16u + ${e} % ${BN / 16}u];`);
    }
    return out;
  };
  const put: string[] = [];
  for (let u = 0; u < piecesA; u++) {
    const e = `(li + ${u * threads}u)`;
    put.push(`{ let w = ((${e} / ${perA}u) * ${panelA}u + ((${e} % ${perA}u) / ${BK / 16}u) * ${ldA}u) / 4u + (${e} % ${BK / 16}u) * 4u; wa[w] = xa${u}.x; wa[w + 1u] = xa${u}.y; wa[w + 2u] = xa${u}.z; wa[w + 3u] = xa${u}.w; }`);
  }
  for (let u = 0; u < piecesB; u++) {
    const e = `(li + ${u * threads}u)`;
    put.push(colB
      ? `{ let w = ((${e} / ${perB}u) * ${panelB}u + ((${e} % ${perB}u) / ${BK / 16}u) * ${ldB}u) / 4u + (${e} % ${BK / 16}u) * 4u; wb[w] = xb${u}.x; wb[w + 1u] = xb${u}.y; wb[w + 2u] = xb${u}.z; wb[w + 3u] = xb${u}.w; }`
      : `{ let w = ((${e} / ${perB}u) * ${panelB}u + ((${e} % ${perB}u) / ${BN / 16}u) * ${ldB}u) / 4u + (${e} % ${BN / 16}u) * 4u; wb[w] = xb${u}.x; wb[w + 1u] = xb${u}.y; wb[w + 2u] = xb${u}.z; wb[w + 3u] = xb${u}.w; }`);
  }
  if (!staged) {
    for (let s = 0; s < S; s++) for (let i = 0; i < TM; i++) loads.push(`let a${s}_${i} = subgroupMatrixLoad<${L}>(&a, ${s * nn}u + (row0 + ${i * c.M}u) * n + k, false, n);`);
    for (let t = 0; t < S; t++) for (let j = 0; j < TN; j++) {
      loads.push(colB
        ? `let b${t}_${j} = subgroupMatrixLoad<${R}>(&b, ${t * nn}u + (col0 + ${j * c.N}u) * n + k, true, n);`
        : `let b${t}_${j} = subgroupMatrixLoad<${R}>(&b, ${t * nn}u + k * n + col0 + ${j * c.N}u, false, n);`);
    }
  }
  for (const [s, t] of pairs) for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) {
    mmas.push(`c${s + t}_${i}_${j} = subgroupMatrixMultiplyAccumulate(a${s}_${i}, b${t}_${j}, c${s + t}_${i}_${j});`);
  }
  const head = (extra = '') => `enable chromium_experimental_subgroup_matrix;${extra}
const n = ${size}u;`;
  if (!staged) {
    const mmaOnly = v.what === 'mma only';
    return `${head()}
@group(0) @binding(0) var<storage, read> a: array<i32>;
@group(0) @binding(1) var<storage, read> b: array<i32>;
@group(0) @binding(2) var<storage, read_write> c: array<i32>;
// one subgroup per workgroup: subgroup matrix offsets must be uniform
@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wg: vec3u) {
  let row0 = wg.y * ${BM}u;
  let col0 = wg.x * ${BN}u;
  ${accs.join('\n  ')}
  ${mmaOnly ? `let k = wg.z; // 0: the tiles are loaded once\n  ${loads.join('\n  ')}` : ''}
  for (var kk = 0u; kk < n; kk += ${BK}u) {
    ${mmaOnly ? mmas.join('\n    ') : `let k = kk;\n    ${[...loads, ...mmas].join('\n    ')}`}
  }
  ${stores.join('\n  ')}
}`;
  }
  // staged: sgRows x 2 subgroups; the subgroup id is subgroup-uniform, which the uniformity
  // analysis accepts only with this diagnostic off. With `prefetch`, the next panels' global
  // loads are issued into registers before this panel's MMAs (one copy in flight).
  const compute = stagedSteps.map((st) => st.replace('MMAS', mmas.join('\n      '))).join('\n    ');
  const loop = v.prefetch
    ? `${fetch('0u', 'var').join('\n  ')}
  for (var k = 0u; k < n; k += ${BK}u) {
    ${put.join('\n    ')}
    workgroupBarrier();
    if (k + ${BK}u < n) {
      ${fetch(`(k + ${BK}u)`, '').join('\n      ')}
    }
    ${compute}
    workgroupBarrier();
  }`
    : `for (var k = 0u; k < n; k += ${BK}u) {
    ${fetch('k', 'let').join('\n    ')}
    ${put.join('\n    ')}
    workgroupBarrier();
    ${compute}
    workgroupBarrier();
  }`;
  return `${head('\nenable subgroups;\ndiagnostic(off, subgroup_matrix_uniformity);')}
@group(0) @binding(0) var<storage, read> a: array<vec4i>;
@group(0) @binding(1) var<storage, read> b: array<vec4i>;
@group(0) @binding(2) var<storage, read_write> c: array<i32>;
var<workgroup> wa: array<i32, ${(S * panelA) / 4}>;
var<workgroup> wb: array<i32, ${(S * panelB) / 4}>;
@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32) {
  let r0 = (sg / 2u) * ${TM * c.M}u;
  let c0 = (sg % 2u) * ${TN * c.N}u;
  let row0 = wg.y * ${BM}u + r0;
  let col0 = wg.x * ${BN}u + c0;
  ${accs.join('\n  ')}
  ${loop}
  ${stores.join('\n  ')}
}`;
}

const SHAPES: Omit<Variant, 'b'>[] = [
  { what: 'int8 gemm', slices: 1, layout: 'direct', tile: [2, 2] },
  { what: 'int8 gemm', slices: 1, layout: 'direct', tile: [4, 4] },
  { what: 'int8 gemm', slices: 1, layout: 'staged', tile: [2, 2] },
  { what: 'int8 gemm', slices: 1, layout: 'staged', tile: [4, 4] },
  { what: 'f32 on int8 (3 slices)', slices: 3, layout: 'direct', tile: [2, 2] },
  { what: 'f32 on int8 (3 slices)', slices: 3, layout: 'direct', tile: [2, 4] },
  { what: 'f32 on int8 (3 slices)', slices: 3, layout: 'staged', tile: [2, 2] },
  { what: 'f32 on int8 (3 slices)', slices: 3, layout: 'staged', tile: [2, 4] },
];
/** Every variant the tool times (round 10, runs 37-39; run 38 also timed `bk` 64 / 128, slower). */
export const ALL_VARIANTS: Variant[] = [
  ...(['col', 'row'] as const).flatMap((b) => SHAPES.map((v) => ({ ...v, b }))),
  // more subgroups per workgroup, padded rows, register prefetch (B column-major; run 38
  // also tried panels 64 and 128 bytes deep: slower in every variant)
  { what: 'int8 gemm', slices: 1, layout: 'staged', tile: [4, 4], b: 'col', pad: 16, prefetch: true },
  { what: 'f32 on int8 (3 slices)', slices: 3, layout: 'staged', tile: [2, 4], b: 'col', sgRows: 4 },
  { what: 'f32 on int8 (3 slices)', slices: 3, layout: 'staged', tile: [2, 4], b: 'col', sgRows: 4, pad: 16 },
  { what: 'f32 on int8 (3 slices)', slices: 3, layout: 'staged', tile: [2, 4], b: 'col', sgRows: 4, prefetch: true },
  { what: 'f32 on int8 (3 slices)', slices: 3, layout: 'staged', tile: [2, 4], b: 'col', sgRows: 4, pad: 16, prefetch: true },
  { what: 'f32 on int8 (3 slices)', slices: 3, layout: 'staged', tile: [2, 4], b: 'col', pad: 16, prefetch: true },
  { what: 'f32 on int8 (3 slices)', slices: 3, layout: 'staged', tile: [4, 2], b: 'col', sgRows: 2, pad: 16, prefetch: true },
  { what: 'mma only', slices: 1, layout: 'direct', tile: [2, 2], b: 'row' },
  { what: 'mma only', slices: 3, layout: 'direct', tile: [2, 2], b: 'row' },
];

/** The ceiling the GPU benchmark reports: the best float32-on-int8 kernel, and the MMA-only bound. */
export const CEILING_VARIANTS: Variant[] = [
  { what: 'f32 on int8 (3 slices)', slices: 3, layout: 'staged', tile: [2, 4], b: 'col' },
  { what: 'mma only', slices: 3, layout: 'direct', tile: [2, 2], b: 'row' },
];

export interface TensorCoresResult {
  date: string;
  adapter: string;
  toggles: string[];
  features: string[];
  subgroupMatrixConfigs: Config[];
  n: number;
  /** why nothing was timed, if so */
  skipped?: string;
  runs: Record<string, unknown>[];
}

/**
 * Times `variants` at n x n x n on a device of its own (the experimental feature needs Dawn's
 * allow_unsafe_apis toggle, which momlab's own device does not set).
 */
export async function measureTensorCores(opts: { n: number; variants: Variant[]; log?: (line: string) => void }): Promise<TensorCoresResult> {
  const { n, variants } = opts;
  const log = opts.log ?? ((line: string) => console.log(line));
  const { adapter, toggles } = await unsafeApisAdapter();
  const info = adapter.info as GPUAdapterInfo & { subgroupMatrixConfigs?: Config[] };
  const configs = (info.subgroupMatrixConfigs ?? []).map((c) => ({ componentType: c.componentType, resultComponentType: c.resultComponentType, M: c.M, N: c.N, K: c.K }));
  const result: TensorCoresResult = {
    date: new Date().toISOString(),
    adapter: [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' '),
    toggles,
    features: [...adapter.features].sort(),
    subgroupMatrixConfigs: configs,
    n,
    runs: [],
  };
  log(JSON.stringify({ adapter: result.adapter, toggles, shaderF16: adapter.features.has('shader-f16'), subgroupMatrixConfigs: configs }));
  const cfg = configs.find((c) => c.componentType === 'i8' && c.resultComponentType === 'i32' && c.N === 16);
  if (!adapter.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName) || !cfg) {
    result.skipped = 'no int8 subgroup matrix configuration with 16 x 16 results on this adapter';
    log(result.skipped);
    return result;
  }
  const device = await adapter.requestDevice({
    requiredFeatures: ['chromium-experimental-subgroup-matrix', 'subgroups', 'timestamp-query'] as GPUFeatureName[],
    requiredLimits: {
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxBufferSize: adapter.limits.maxBufferSize,
      maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
    },
  });

  // inputs: uniform in (-1, 1) with full float32 mantissas (seeded)
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const A = new Float32Array(n * n).map(() => Math.fround(rnd() * 2 - 1));
  const B = new Float32Array(n * n).map(() => Math.fround(rnd() * 2 - 1));
  const ea = scaleExponents(A, n, n, true), eb = scaleExponents(B, n, n, false);
  const cut = (slices: number) => ({ a: cutDigits(A, n, n, ea, true, slices), b: cutDigits(B, n, n, eb, false, slices) });
  // only the slice counts the variants use (cutting 4096² in JavaScript takes seconds)
  const empty = { a: new Int8Array(0), b: new Int8Array(0) };
  const digits = { 1: variants.some((v) => v.slices === 1) ? cut(1) : empty, 3: variants.some((v) => v.slices === 3) ? cut(3) : empty };
  const transposed = (x: Int8Array) => {
    const t = new Int8Array(x.length);
    for (let s = 0; s < x.length / (n * n); s++) for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) t[s * n * n + j * n + k] = x[s * n * n + k * n + j];
    return t;
  };
  const digitsBT = { 1: transposed(digits[1].b), 3: transposed(digits[3].b) };
  // the float64 product and a float32 loop (sequential sums) at 256 sampled entries
  const samples = Array.from({ length: 256 }, (_, t) => [(t * 977) % n, (t * 613 + 5) % n] as const);
  const ref = samples.map(([i, j]) => {
    let f64 = 0, f32 = 0;
    for (let k = 0; k < n; k++) {
      f64 += A[i * n + k] * B[k * n + j];
      f32 = Math.fround(f32 + Math.fround(A[i * n + k] * B[k * n + j]));
    }
    return { f64, f32 };
  });
  const scale = Math.max(...ref.map((r) => Math.abs(r.f64)));
  const f32Err = Math.max(...ref.map((r) => Math.abs(r.f32 - r.f64)));

  const mk = (data: Int8Array, usage: number) => {
    const buf = device.createBuffer({ size: data.byteLength, usage: usage | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
    return buf;
  };
  for (const v of variants) {
    const row: Record<string, unknown> = { ...v };
    try {
      device.pushErrorScope('validation');
      const module = device.createShaderModule({ code: int8MatmulWgsl(cfg, v, n) });
      const messages = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
      if (messages.length) throw new Error(`WGSL: ${messages.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')}`);
      const pipe = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
      const d = digits[v.slices];
      const ab = mk(d.a, GPUBufferUsage.STORAGE), bb = mk(v.b === 'col' ? digitsBT[v.slices] : d.b, GPUBufferUsage.STORAGE);
      const outBytes = v.slices * n * n * 4;
      const cb = device.createBuffer({ size: outBytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
      const rd = device.createBuffer({ size: outBytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const bg = device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: [ab, bb, cb].map((buffer, binding) => ({ binding, resource: { buffer } })) });
      const err = await device.popErrorScope();
      if (err) throw new Error(`validation: ${err.message}`);
      const staged = v.layout === 'staged';
      const times = await timeDispatch(device, pipe, bg, [n / ((staged ? 2 : 1) * v.tile[1] * cfg.N), n / ((staged ? (v.sgRows ?? 2) : 1) * v.tile[0] * cfg.M)]);
      const enc = device.createCommandEncoder();
      enc.copyBufferToBuffer(cb, 0, rd, 0, outBytes);
      device.queue.submit([enc.finish()]);
      await rd.mapAsync(GPUMapMode.READ);
      const got = new Int32Array(rd.getMappedRange().slice(0));
      rd.unmap();
      const ms = median(times);
      const products = digitPairs(v.slices).length;
      row.ms = ms;
      row.msRange = [Math.min(...times), Math.max(...times)];
      row.int8Tops = (2 * n ** 3 * products) / (ms * 1e-3) / 1e12;
      if (v.slices === 3) row.f32EquivalentTflops = (2 * n ** 3) / (ms * 1e-3) / 1e12;
      if (v.what === 'mma only') {
        row.check = 'none: the tiles are loaded once, so the result is not a product';
      } else {
        // level 0 (first digits x first digits) must be exact integer arithmetic
        let mismatches = 0, worst = 0;
        samples.forEach(([i, j], t) => {
          let exact = 0;
          for (let k = 0; k < n; k++) exact += d.a[i * n + k] * d.b[k * n + j];
          if (exact !== got[i * n + j]) mismatches++;
          if (v.slices === 3) {
            const x = joinLevels([0, 1, 2].map((lv) => got[lv * n * n + i * n + j]), ea[i], eb[j]);
            worst = Math.max(worst, Math.abs(x - ref[t].f64));
          }
        });
        row.level0IntegerMismatches = mismatches;
        if (v.slices === 3) Object.assign(row, { worstAbsErrVsF64: worst, f32LoopWorstAbsErr: f32Err, maxAbs: scale });
      }
      for (const b of [ab, bb, cb, rd]) b.destroy();
    } catch (e) {
      row.error = (e as Error).message;
    }
    log(JSON.stringify(row));
    result.runs.push(row);
  }
  device.destroy();
  return result;
}

/** What the GPU benchmark's ceilings report of the tensor cores (see bench/gpu.ts). */
export interface TensorCeiling {
  n: number;
  configs: string;
  skipped?: string;
  /** the best float32-on-int8 kernel (CEILING_VARIANTS[0]) */
  float32Equivalent?: { ms: number; tflops: number; worstAbsErr: number; f32LoopWorstAbsErr: number };
  /** MMAs alone, 3 slices: the bound on any kernel built on this lowering */
  mmaOnlyTflops?: number;
  error?: string;
}

export async function measureTensorCeiling(n: number): Promise<TensorCeiling> {
  const r = await measureTensorCores({ n, variants: CEILING_VARIANTS, log: () => undefined });
  const out: TensorCeiling = { n, configs: r.subgroupMatrixConfigs.map((c) => `${c.componentType}->${c.resultComponentType} ${c.M}x${c.N}x${c.K}`).join(', ') || 'none' };
  if (r.skipped) return { ...out, skipped: r.skipped };
  const [best, mma] = r.runs;
  const err = r.runs.find((x) => typeof x.error === 'string')?.error as string | undefined;
  if (err) return { ...out, error: err };
  out.float32Equivalent = { ms: best.ms as number, tflops: best.f32EquivalentTflops as number, worstAbsErr: best.worstAbsErrVsF64 as number, f32LoopWorstAbsErr: best.f32LoopWorstAbsErr as number };
  out.mmaOnlyTflops = mma.f32EquivalentTflops as number;
  return out;
}
