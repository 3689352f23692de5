/**
 * Ceilings measured in the same run as the kernels they judge:
 *  - WGSL float32 matmuls written only to go fast (128 x 128 block per workgroup, 8 x 8
 *    outputs per thread in registers, vec4 loads, k-slices staged in workgroup memory; a plain
 *    and a software-pipelined one, the fastest reported): what WGSL float32 arithmetic reaches
 *    on this adapter without tensor cores;
 *  - copy bandwidth (copyBufferToBuffer of a large buffer): what streaming memory reaches.
 */
import { Usage } from '../gpu/buffers.js';
import type { GpuContext } from '../gpu/device.js';
import type { GpuTimer } from './timer.js';

const BM = 128;
const BN = 128;
const BK = 8;

// What both matmul kernels share: the bindings, and the entry with thread (ty, tx)'s block at row0 + 8 ty, col0 + 4 tx
const MATMUL_BINDINGS = `struct Params { M: u32, N: u32, K: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> Cm: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> P: Params;`;
const MATMUL_ENTRY = `@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tx = lid % 16u;
  let ty = lid / 16u;
  let row0 = wid.y * ${BM}u;
  let col0 = wid.x * ${BN}u;
  let K4 = P.K / 4u;
  let N4 = P.N / 4u;`;

/** C = A B with A [M, K], B [K, N], row-major; M, N multiples of 128, K of 8 (the bench picks them). */
export const ceilingMatmulWgsl = /* wgsl */ `
${MATMUL_BINDINGS}
// As[k][m] (A's slice transposed, so a thread's 8 rows are two vec4 reads), Bs[k][n]
var<workgroup> As: array<vec4<f32>, ${(BK * BM) / 4}>;
var<workgroup> Bs: array<vec4<f32>, ${(BK * BN) / 4}>;

${MATMUL_ENTRY}
  var acc: array<vec4<f32>, 16>;
  // this thread's staging: one vec4 of A (row lid/2, k 4*(lid%2)), one vec4 of B (k lid/32, col 4*(lid%32))
  let ar = lid / 2u;
  let ak = (lid % 2u) * 4u;
  let bk = lid / 32u;
  let bc = lid % 32u;
  for (var k0 = 0u; k0 < P.K; k0 += ${BK}u) {
    let a = A[(row0 + ar) * K4 + (k0 + ak) / 4u];
    // scalar scatter into the transposed tile: As[k][m] as floats at k*BM + m
    let m4 = ar / 4u;
    let mc = ar % 4u;
    As[(ak + 0u) * ${BM / 4}u + m4][mc] = a.x;
    As[(ak + 1u) * ${BM / 4}u + m4][mc] = a.y;
    As[(ak + 2u) * ${BM / 4}u + m4][mc] = a.z;
    As[(ak + 3u) * ${BM / 4}u + m4][mc] = a.w;
    Bs[bk * ${BN / 4}u + bc] = B[(k0 + bk) * N4 + col0 / 4u + bc];
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
      let a0 = As[kk * ${BM / 4}u + ty * 2u];
      let a1 = As[kk * ${BM / 4}u + ty * 2u + 1u];
      let b0 = Bs[kk * ${BN / 4}u + tx];
      let b1 = Bs[kk * ${BN / 4}u + tx + 16u];
      acc[0] += a0.x * b0; acc[1] += a0.x * b1;
      acc[2] += a0.y * b0; acc[3] += a0.y * b1;
      acc[4] += a0.z * b0; acc[5] += a0.z * b1;
      acc[6] += a0.w * b0; acc[7] += a0.w * b1;
      acc[8] += a1.x * b0; acc[9] += a1.x * b1;
      acc[10] += a1.y * b0; acc[11] += a1.y * b1;
      acc[12] += a1.z * b0; acc[13] += a1.z * b1;
      acc[14] += a1.w * b0; acc[15] += a1.w * b1;
    }
    workgroupBarrier();
  }
  // rows ty*8 .. ty*8+7; columns 4*tx .. +3 and 64 + 4*tx .. +3 (the two vec4s read above)
  for (var i = 0u; i < 8u; i++) {
    let r = row0 + ty * 8u + i;
    Cm[r * N4 + col0 / 4u + tx] = acc[i * 2u];
    Cm[r * N4 + col0 / 4u + tx + 16u] = acc[i * 2u + 1u];
  }
}`;

/**
 * The same product, software-pipelined: each thread loads the next k-slice into registers while
 * the current one is multiplied, and the slices alternate between two workgroup buffers, so one
 * barrier per slice where the kernel above takes two and waits on every load; the 64
 * accumulators are named registers and `bk` is the slice depth (8 or 16). It tells whether the
 * plain kernel's figure is WGSL's float32 ceiling here or only that kernel's.
 */
export function ceilingMatmulPipelinedWgsl(bk: 8 | 16): string {
  const per = bk / 8; // vec4 of A and of B each thread stages per slice
  const js = Array.from({ length: per }, (_, j) => j);
  const rows = [0, 1, 2, 3, 4, 5, 6, 7];
  const xyzw = ['x', 'y', 'z', 'w'];
  // thread lid's j-th staged vec4, e = lid + 256 j: A row e / (bk / 4), key quad e % (bk / 4); B row e / 32, column quad e % 32
  const load = (k0: string) =>
    js
      .map(
        (j) => `    ra${j} = A[(row0 + (lid + ${256 * j}u) / ${bk / 4}u) * K4 + (${k0}) / 4u + (lid + ${256 * j}u) % ${bk / 4}u];
    rb${j} = B[(${k0} + (lid + ${256 * j}u) / 32u) * N4 + col0 / 4u + lid % 32u];`,
      )
      .join('\n');
  const stage = js
    .map(
      (j) => `    {
      let m = (lid + ${256 * j}u) / ${bk / 4}u;
      let k = ((lid + ${256 * j}u) % ${bk / 4}u) * 4u;
${[0, 1, 2, 3].map((c) => `      As[(buf + k + ${c}u) * ${BM / 4}u + m / 4u][m % 4u] = ra${j}.${xyzw[c]};`).join('\n')}
      Bs[(buf + (lid + ${256 * j}u) / 32u) * ${BN / 4}u + lid % 32u] = rb${j};
    }`,
    )
    .join('\n');
  return /* wgsl */ `
${MATMUL_BINDINGS}
var<workgroup> As: array<vec4<f32>, ${(2 * bk * BM) / 4}>; // two slices, A transposed: [buffer·BK + k][m]
var<workgroup> Bs: array<vec4<f32>, ${(2 * bk * BN) / 4}>;

${MATMUL_ENTRY}
${rows.map((r) => `  var c${r}0 = vec4<f32>(0.0); var c${r}1 = vec4<f32>(0.0);`).join('\n')}
${js.map((j) => `  var ra${j} = vec4<f32>(0.0); var rb${j} = vec4<f32>(0.0);`).join('\n')}
${load('0u')}
  var buf = 0u;
  for (var k0 = 0u; k0 < P.K; k0 += ${bk}u) {
${stage}
    workgroupBarrier(); // this slice is staged; the other buffer's readers (two slices back) are done
    if (k0 + ${bk}u < P.K) {
${load(`k0 + ${bk}u`)}
    }
    for (var kk = 0u; kk < ${bk}u; kk++) {
      let a0 = As[(buf + kk) * ${BM / 4}u + ty * 2u];
      let a1 = As[(buf + kk) * ${BM / 4}u + ty * 2u + 1u];
      let b0 = Bs[(buf + kk) * ${BN / 4}u + tx];
      let b1 = Bs[(buf + kk) * ${BN / 4}u + tx + 16u];
${rows.map((r) => `      c${r}0 += a${r >> 2}.${xyzw[r & 3]} * b0; c${r}1 += a${r >> 2}.${xyzw[r & 3]} * b1;`).join('\n')}
    }
    buf = ${bk}u - buf;
  }
${rows.map((r) => `  Cm[(row0 + ty * 8u + ${r}u) * N4 + col0 / 4u + tx] = c${r}0;\n  Cm[(row0 + ty * 8u + ${r}u) * N4 + col0 / 4u + tx + 16u] = c${r}1;`).join('\n')}
}`;
}

/** C = A B for integer matrices, to check the kernel computes a matmul (not only that it is fast). */
function hostProduct(a: Float32Array, b: Float32Array, n: number, i: number, j: number): number {
  let s = 0;
  for (let k = 0; k < n; k++) s += a[i * n + k] * b[k * n + j];
  return s;
}

export interface Ceilings {
  /** the fastest of the matmul kernels that computed the product (all of them in `kernels`) */
  matmul: { n: number; ms: number; tflops: number; checked: boolean; kernel: string; kernels: Array<{ label: string; ms: number; tflops: number; checked: boolean }> };
  copy: { bytes: number; ms: number; tbps: number };
}

export async function measureCeilings(ctx: GpuContext, timer: GpuTimer, n: number, copyBytes: number, repeats: number): Promise<Ceilings> {
  const { device } = ctx;
  const make = (label: string, words: number, usage = Usage.STORAGE | Usage.COPY_DST | Usage.COPY_SRC) => ctx.createBuffer({ label, size: words * 4, usage });
  // small integers: every product and sum is exact in float32, so spot checks compare exactly
  const a = Float32Array.from({ length: n * n }, (_, i) => ((i * 7) % 5) - 2);
  const b = Float32Array.from({ length: n * n }, (_, i) => ((i * 3) % 7) - 3);
  const A = make('ceiling A', n * n);
  const B = make('ceiling B', n * n);
  const C = make('ceiling C', n * n);
  const params = ctx.createBuffer({ label: 'ceiling params', size: 16, usage: Usage.UNIFORM | Usage.COPY_DST });
  device.queue.writeBuffer(A, 0, a);
  device.queue.writeBuffer(B, 0, b);
  device.queue.writeBuffer(params, 0, new Uint32Array([n, n, n, 0]));
  const staging = device.createBuffer({ size: n * n * 4, usage: Usage.MAP_READ | Usage.COPY_DST });
  // each kernel timed, then spot-checked against the host (C cleared first, so a kernel that
  // writes nothing cannot pass on the previous kernel's result)
  const timeKernel = async (label: string, wgsl: string) => {
    const pipeline = ctx.pipeline(label, wgsl);
    const bg = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [A, B, C, params].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const clear = device.createCommandEncoder();
    clear.clearBuffer(C);
    device.queue.submit([clear.finish()]);
    const mm = await timer.median((enc) => {
      const pass = enc.beginComputePass({ label });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bg);
      pass.dispatchWorkgroups(n / BN, n / BM);
      pass.end();
    }, repeats);
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(C, 0, staging, 0, n * n * 4);
    device.queue.submit([enc.finish()]);
    await staging.mapAsync(0x1);
    const c = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    let checked = true;
    for (const [i, j] of [[0, 0], [n - 1, n - 1], [n >> 1, 3], [5, n - 7], [n - 3, n >> 2]]) {
      if (c[i * n + j] !== hostProduct(a, b, n, i, j)) checked = false;
    }
    return { label, ms: mm.ms, tflops: (2 * n ** 3) / (mm.ms * 1e-3) / 1e12, checked };
  };
  const kernels = [
    await timeKernel('two barriers per slice', ceilingMatmulWgsl),
    await timeKernel('pipelined, slices of 8', ceilingMatmulPipelinedWgsl(8)),
    await timeKernel('pipelined, slices of 16', ceilingMatmulPipelinedWgsl(16)),
  ];
  // the ceiling is the fastest kernel that computed the product
  const best = kernels.filter((k) => k.checked).sort((x, y) => x.ms - y.ms)[0] ?? kernels[0];
  [A, B, C, params, staging].forEach((x) => x.destroy());

  const words = copyBytes / 4;
  const src = make('copy src', words);
  const dst = make('copy dst', words);
  const cp = await timer.median((e) => e.copyBufferToBuffer(src, 0, dst, 0, copyBytes), repeats);
  src.destroy();
  dst.destroy();
  return {
    matmul: { n, ms: best.ms, tflops: best.tflops, checked: best.checked, kernel: best.label, kernels },
    // a copy reads and writes every byte
    copy: { bytes: copyBytes, ms: cp.ms, tbps: (2 * copyBytes) / (cp.ms * 1e-3) / 1e12 },
  };
}
