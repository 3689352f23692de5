/**
 * What the chunkwise kernels of the built-in rules (docs/spec.md §5; chunk-prepare.ts, chunk-wu.ts,
 * chunk-scan.ts, chunk-output.ts, put together by chunk-encoder.ts) share: the rule's form, the
 * runtime sizes, the chunk slots, the scratch buffers and the tiled product of `wu` and `output`.
 *
 * Chunk index space: segment lengths live only on the GPU (in `cu`), so the per-chunk kernels are
 * dispatched over an upper bound of ceil(P/C) + S chunk slots. Segment s owns slots
 * [floor(cu[s]/C) + s, floor(cu[s]/C) + s + ceil(len_s/C)) — disjoint for consecutive segments
 * because floor(a + b) >= floor(a) + floor(b) and ceil(x) <= floor(x) + 1 — and a workgroup
 * finds its segment by binary search over cu; the at most S slots that map to no chunk exit.
 *
 * Numerics: every decay enters as e^{G_t − G_s} with t >= s, or e^{G} with G <= 0, so no factor
 * exceeds 1 (no e^{G_t}/e^{G_s}, which overflows for long chunks of strong decay).
 */
import type { InputDecl } from '../../reference/types.js';
import { declareBindings, type Binding } from './kernel-util.js';

/** Which docs/spec.md §5 form a rule has: its decay (none, one per token, one per key channel) and whether it is a delta rule. */
export interface ChunkForm {
  decay: 'none' | 'scalar' | 'channel';
  delta: boolean;
}

export interface ChunkRuleSpec {
  name: string;
  /** must contain k (dk), v (dv), g (when decay != none: scalar or dk) and beta (delta, scalar) */
  inputs: readonly InputDecl[];
  form: ChunkForm;
}

/** Chunk sizes are runtime values up to this bound: one pipeline serves C = 16, 32 and 64. */
export const MAX_CHUNK = 64;

// Runtime sizes (one pipeline per rule and dk serves every H, dv, C and segment count).
// FS, NB: the first shared segment and the scan's column blocks (its workgroup order, `ordered`)
export const PARAMS_STRUCT = 'struct Params { S: u32, C: u32, H: u32, DV: u32, FS: u32, NB: u32 }';

/** WGSL: (segment, first position, token count) of a chunk slot, by binary search over cu (see the header). */
export const LOCATE_WGSL = /* wgsl */ `// (segment, first position, token count) of chunk slot \`slot\`; count 0 when the slot is empty.
fn locate(slot: u32) -> vec3u {
  let C = params.C;
  var lo = 0u;
  var hi = params.S;
  while (hi - lo > 1u) {
    let mid = (lo + hi) / 2u;
    if (cu[mid] / C + mid <= slot) { lo = mid; } else { hi = mid; }
  }
  let start = cu[lo] + (slot - (cu[lo] / C + lo)) * C;
  let end = cu[lo + 1u];
  if (start >= end) { return vec3u(lo, start, 0u); }
  return vec3u(lo, start, min(C, end - start));
}`;

/**
 * The buffers of one chunked call: the rule's (cu, q, inputs, state, o) and the scratch between the
 * kernels (G, Aqk, A, W, U, V', the chunk-start states), sized by P and cached per device
 * (kernel-util.ts), so repeated calls with the same or fewer positions allocate nothing.
 */
export interface ChunkBuffers {
  cu: GPUBuffer;
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  g?: GPUBuffer;
  beta?: GPUBuffer;
  /** cumulative log-decay from the chunk start [P,H] or [P,H,dk] */
  G?: GPUBuffer;
  /** Aqk [P,H,C] */
  A: GPUBuffer;
  W?: GPUBuffer;
  U?: GPUBuffer;
  state: GPUBuffer;
  o: GPUBuffer;
  params: GPUBuffer;
  /** delta rules: A = (I + L)^{-1}, strictly lower, [P,H,C] */
  Ainv?: GPUBuffer;
  /** split output: V' [P,H,dv] (delta rules) and the state at every chunk start [slots,H,dk,dv] */
  Vn?: GPUBuffer;
  Hc?: GPUBuffer;
}

/** A binding's buffer; null buffers when only the WGSL text is wanted. */
export const bufferOf = (buf: GPUBuffer | undefined) => buf as GPUBuffer;

/** An operand of tiledProduct: its element at (row, column) as WGSL, and when that element exists (else 0). */
export interface Operand {
  at: (x: string, y: string) => string;
  ok: (x: string, y: string) => string;
}

export const KT = 16; // tiledProduct's inner-dimension slice
/** tiledProduct's workgroup memory: the left slice [kk][token quad] and the right one [kk][column quad] */
const TILED_PRODUCT_WORKGROUP = `const KT: u32 = ${KT}u;
// the left slice's row stride, one vec4 of padding (see GS in prepare): 16 x 2 staging stores of a
// warp on 32 banks instead of 2
const AS: u32 = ${MAX_CHUNK / 4 + 1}u;
var<workgroup> as_: array<vec4<f32>, ${KT * (MAX_CHUNK / 4 + 1)}>;
var<workgroup> bs_: array<vec4<f32>, ${KT * 16}>;`;
/** CM x KT = KT x 64 = 1024 elements of a slice, 4 per thread */
export const SLICE_JS = [0, 1, 2, 3];
/** tiledProduct's registers: the accumulators (row r0 + k, four columns) and the next slice's elements */
export const TILED_PRODUCT_REGISTERS = [0, 1, 2, 3].map((k) => `  var acc${k} = vec4<f32>(0.0);`).join('\n') + '\n' + SLICE_JS.map((j) => `  var na${j} = 0.0; var nb${j} = 0.0;`).join('\n');

/**
 * One tiled product of `output` and `wu` (256 threads, CM x 64 outputs, thread (t / 16, t % 16) the
 * 4 x 4 block at rows r0.., columns c0 + 4 (t % 16)..): acc_k += Σ_i a(r0 + k, i) b(i, c) over
 * i = k0 = 0, KT, .. < bound, each slice staged in workgroup memory as vec4 (rows of `a` as token
 * quads, as the Gram tiles of `prepare`) and the next one loaded into registers while this one is
 * multiplied. `c0` is the workgroup's first column.
 */
export function tiledProduct(k0: string, bound: string, a: Operand, b: Operand, c0: string, lowerTriangle?: 'strict' | 'diagonal', b2?: Operand): string {
  // A triangular left operand (a(r, i) = 0 for i > r, or i >= r): a thread whose four rows end
  // before the slice skips its FMAs; between the barriers, so nothing waits on it but its warp.
  const live = lowerTriangle ? `${k0} ${lowerTriangle === 'strict' ? '+ 1u' : ''} <= r0 + 3u` : 'true';
  const load = (i0: string) =>
    SLICE_JS.map(
      (j) => `      {
        let e = t + ${j}u * NT;
        let u = e / KT;
        let i = ${i0} + e % KT;
        na${j} = 0.0;
        if (${a.ok('u', 'i')}) { na${j} = ${a.at('u', 'i')}; }
        let ib = ${i0} + e / 64u;
        let c = ${c0} + e % 64u;
        nb${j} = 0.0;
        if (${b.ok('ib', 'c')}) { nb${j} = ${b.at('ib', 'c')}; }${
          b2
            ? `
        nc${j} = 0.0;
        if (${b2.ok('ib', 'c')}) { nc${j} = ${b2.at('ib', 'c')}; }`
            : ''
        }
      }`,
    ).join('\n');
  const stage = SLICE_JS.map(
    (j) => `      {
        let e = t + ${j}u * NT;
        let u = e / KT;
        as_[(e % KT) * AS + u / 4u][u % 4u] = na${j};
        bs_[(e / 64u) * 16u + (e % 64u) / 4u][e % 4u] = nb${j};${b2 ? `
        bs2_[(e / 64u) * 16u + (e % 64u) / 4u][e % 4u] = nc${j};` : ''}
      }`,
  ).join('\n');
  return `
    {
${load('0u')}
    }
    for (var ${k0} = 0u; ${k0} < ${bound}; ${k0} += KT) {
${stage}
      workgroupBarrier();
      if (${k0} + KT < ${bound}) {
${load(`${k0} + KT`)}
      }
      for (var kk = 0u; kk < KT && ${live}; kk++) {
        let a = as_[kk * AS + t / 16u];
        let b = bs_[kk * 16u + t % 16u];
${[0, 1, 2, 3].map((k) => `        acc${k} += a[${k}] * b;`).join('\n')}${
  b2
    ? `
        let b2 = bs2_[kk * 16u + t % 16u];
${[0, 1, 2, 3].map((k) => `        acc2${k} += a[${k}] * b2;`).join('\n')}`
    : ''
}
      }
      workgroupBarrier();
    }`;
}

/** The module scope of the two tiled-product kernels (`output`, `wu`): sizes, bindings, the slices, `locate`, and the kernel's own workgroup arrays. */
export function tiledKernelPrelude(dk: number, bindings: Binding[], workgroup: string): string {
  return /* wgsl */ `
const DK: u32 = ${dk}u;
const CM: u32 = ${MAX_CHUNK}u;
const NT: u32 = 256u;
${PARAMS_STRUCT}
${declareBindings(bindings)}
${TILED_PRODUCT_WORKGROUP}
${workgroup}
${LOCATE_WGSL}
`;
}
