/**
 * The chunkwise-parallel form (docs/spec.md §5) of the built-in rules over the varlen contract of
 * gpu/kernels/types.ts, in three kernels (four for delta rules), one dispatch each over all segments:
 *
 * 1. `prepare`, one workgroup per (chunk, head), all chunks of all segments in parallel. Per
 *    chunk of n <= C tokens starting at position c0:
 *      G     cumulative log-decay from the chunk start   (scalar [P,H] or per channel [P,H,dk])
 *      Aqk   row t: (q_t·k_s) e^{G_t − G_s} for s <= t   ([P,H,C]; per channel for gla:
 *            Σ_i q_ti k_si e^{G_ti − G_si})
 *      delta rules also: L_ts = β_t (k_t·k_s) e^{G_t − G_s} (s < t), A = (I + L)^{-1} in 16 x 16
 *      blocks in workgroup memory, written to storage ([P,H,C], strictly lower)
 *    then for delta rules `wu`, over all (chunk, head, block of 64 columns) at once:
 *      W = A((β e^{G}) ⊙ K) [P,H,dk], U = A(β ⊙ V) [P,H,dv], one tiled product for both (the unit
 *      diagonal of A added as the right-hand side itself; 'fused' computes them inside `prepare`,
 *      see blockedDeltaTail).
 * 2. `scan`, one workgroup per (segment, head, block of BV state columns), sequential over the
 *    segment's chunks; the block of h is spread over the threads (4 x 4 each, see scanLayout):
 *      V' = U − W h          (V' = V for linear/decay/gla)
 *      h  ← e^{G_n} h + (K ⊙ e^{G_n − G})ᵀ V'      (G_n: G at the chunk's last token)
 *    writing V' and the state h_c at every chunk start to scratch.
 * 3. `output` (fla's chunk_fwd_o), over all (chunk, head, block of 64 columns) at once:
 *      O  = (Q ⊙ e^{G}) h_c + Aqk V'
 *    (The 'fused' option computes O inside the scan instead, rounds 2-7; it is the fallback when the
 *    chunk-start states do not fit one storage binding.)
 *
 * Chunk index space: segment lengths live only on the GPU (in `cu`), so `prepare` is dispatched
 * over an upper bound of ceil(P/C) + S chunk slots. Segment s owns slots
 * [floor(cu[s]/C) + s, floor(cu[s]/C) + s + ceil(len_s/C)) — disjoint for consecutive segments
 * because floor(a + b) >= floor(a) + floor(b) and ceil(x) <= floor(x) + 1 — and a workgroup
 * finds its segment by binary search over cu; the at most S slots that map to no chunk exit.
 *
 * Numerics: every decay enters as e^{G_t − G_s} with t >= s, or e^{G} with G <= 0, so no factor
 * exceeds 1 (no e^{G_t}/e^{G_s}, which overflows for long chunks of strong decay).
 *
 * Scratch (G, Aqk, A, W, U, V', the chunk-start states) is sized by P and cached per device
 * (kernel-util.ts), so repeated calls with the same or fewer positions allocate nothing.
 */
import { GpuError } from '../../reference/errors.js';
import type { InputDecl } from '../../reference/types.js';
import { gridFor } from '../grid.js';
import type { GpuContext } from '../device.js';
import {
  cachedScratch,
  cachedUniform,
  checkRuleCall,
  checkStorageBindings,
  checkWorkgroupBytes,
  declareBindings,
  encodePass,
  fitCount,
  gridDim,
  type Binding,
} from './kernel-util.js';
import type { RuleBuffers, RuleDims } from './types.js';

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
const MAX_CHUNK = 64;

// Runtime sizes (one pipeline per rule and dk serves every H, dv, C and segment count).
// FS, NB: the first shared segment and the scan's column blocks (its workgroup order, `ordered`)
const PARAMS_STRUCT = 'struct Params { S: u32, C: u32, H: u32, DV: u32, FS: u32, NB: u32 }';

/** WGSL: (segment, first position, token count) of a chunk slot, by binary search over cu (see the header). */
const LOCATE_WGSL = /* wgsl */ `// (segment, first position, token count) of chunk slot \`slot\`; count 0 when the slot is empty.
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
 * Tiles of `prepare`, sized for the largest chunk against `budget` bytes of workgroup memory:
 * TK keys per Gram tile and, for delta rules, WB columns per W / U tile (64 where it fits, as on
 * the H200's 48 KiB; 32 on lavapipe's 32 KiB) plus the 16 x 48 scratch of the blocked inverse.
 */
function prepareLayout(f: ChunkForm, budget: number, wuSplit: boolean) {
  const C = MAX_CHUNK;
  const perTk = (4 * C + 16) * (f.decay === 'channel' ? 3 : 2); // padded rows (GS)
  // split W / U: no W / U tile (stg) in prepare
  const fixedFor = (wb: number) => 4 * (2 * C + (f.delta ? C * C + (wuSplit ? 0 : C * wb) + 16 * 48 : 0));
  // At most 8 keys per tile: the Gram loop costs two workgroup loads per FMA whatever the tile,
  // so wider tiles only save barriers, while unrolling them tripled lavapipe's compile time (gla).
  const wb = f.delta && fitCount(perTk, fixedFor(64), budget, 8) < 8 ? 32 : 64;
  const fixed = fixedFor(wb);
  const tk = fitCount(perTk, fixed, budget, 8);
  return { tk, wb, bytes: fixed + Math.max(1, tk) * perTk };
}

/**
 * Layout of `scan`: a workgroup owns one (segment, head) and BV = 4·CQ state columns, with
 * NT = RQ·CQ threads; thread (rq, cq) keeps the 4 x 4 block of h at rows 4rq.., columns 4cq.. in
 * registers. Up to 256 threads and `maxColumns` columns: dk = 64 gives 16 x 8 (BV = 32), dk = 128
 * 32 x 4 (BV = 16, defaultScanColumns) or 32 x 8 (BV = 32), dk = 256 64 x 4 (BV = 16).
 * Workgroup memory: h [dkp, BV] and V' [C, BV] as vec4 of columns, plus the chunk's G.
 */
function scanLayout(dk: number, maxColumns = 32) {
  const rq = Math.ceil(dk / 4);
  const cq = Math.max(1, Math.min(Math.floor(maxColumns / 4), Math.floor(256 / rq)));
  return { rq, cq, nt: rq * cq, bj: 4 * cq, bytes: 16 * (4 * rq * cq + MAX_CHUNK * cq) + 4 * MAX_CHUNK };
}

/**
 * How `prepare` inverts I + L: in 16 x 16 blocks with each diagonal block column in registers and
 * the row blocks four columns per thread (default, round 11), with the diagonal columns through
 * workgroup memory and one row-block entry per step (rounds 7-10, 'blocked-columns'), with round
 * 6's diagonal step ('blocked-steps'), or row by row (the round-3 kernel); the last three are kept
 * as benchmark variants.
 */
export type ChunkInverse = 'blocked' | 'blocked-columns' | 'blocked-steps' | 'rows';

/**
 * Benchmark-only cuts of `prepare` (`cut`) and `scan` (`ScanCut`): the kernel stops after a part
 * (its later outputs are wrong), so that timing it shows what each part costs. Never used by a forward.
 */
export type PrepareCut = 'gram' | 'inverse';

/** Which tiles of `prepare` are loaded one tile ahead: none (round 7), the Gram tiles, or also the W / U tiles. */
export type PreparePrefetch = 'none' | 'gram' | 'all';

/**
 * Where a delta rule's W and U are computed: 'split' (default) — `prepare` writes A = (I + L)^{-1}
 * and the `wu` kernel multiplies (see splitDeltaTail); 'fused' — inside `prepare` (rounds 4-10).
 * The round-3 inverse ('rows') always computes them in `prepare`.
 */
export type ChunkWu = 'split' | 'fused';

const wuIsSplit = (f: ChunkForm, inverse: ChunkInverse, wu: ChunkWu) => f.delta && wu === 'split' && inverse !== 'rows';

export function prepareKernelWgsl(f: ChunkForm, dk: number, tk: number, wb = 32, inverse: ChunkInverse = 'blocked', prefetch: PreparePrefetch = 'all', cut?: PrepareCut, wu: ChunkWu = 'fused'): string {
  const sc = f.decay === 'scalar';
  const ch = f.decay === 'channel';
  const dl = f.delta;
  const split = wuIsSplit(f, inverse, wu);
  const CM = MAX_CHUNK;
  const rows = [0, 1, 2, 3];
  return /* wgsl */ `
const DK: u32 = ${dk}u;
const CM: u32 = ${CM}u; // array bound: the largest chunk
const NT: u32 = 256u; // threads: 16 x 16 blocks of 4 x 4 of a CM x CM Gram matrix
const TK: u32 = ${tk}u;
const CQ4: u32 = ${CM / 4}u; // token quads of a Gram tile row
// a Gram tile row's stride, one vec4 of padding: the staging stores of a warp's 8 keys x 4 tokens
// then fall on 32 banks, where rows 64 words apart put them on 4 (8-way conflicts)
const GS: u32 = CQ4 + 1u;
${PARAMS_STRUCT}
${declareBindings(prepareBindings(f, null, split))}
// Gram tiles transposed, [key c][token quad]: a thread's four rows (or columns) are one vec4
var<workgroup> tq: array<vec4<f32>, ${(CM / 4 + 1) * tk}>;
var<workgroup> tk_: array<vec4<f32>, ${(CM / 4 + 1) * tk}>;
${ch ? `var<workgroup> tg: array<vec4<f32>, ${(CM / 4 + 1) * tk}>;` : ''}
var<workgroup> gs: array<f32, ${CM}>;
var<workgroup> bs: array<f32, ${CM}>;
${dl ? `// A = (I + L)^{-1}, row-major [CM][CM], as vec4 so that W / U read four s of a row in one load
var<workgroup> am: array<vec4<f32>, ${(CM * CM) / 4}>;
fn amAt(i: u32) -> f32 { return am[i / 4u][i % 4u]; }
fn amPut(i: u32, v: f32) { am[i / 4u][i % 4u] = v; }` : ''}
${dl && inverse !== 'rows' ? `${split ? '' : `var<workgroup> stg: array<vec${wb / 16}<f32>, ${CM * 16}>; // a W / U input tile [u][column group]`}
${inverse === 'blocked' ? `var<workgroup> tt: array<vec4<f32>, ${16 * 12}>;` : `var<workgroup> tt: array<f32, ${16 * 48}>;`} // L_{I,<I} A_{<I,<I} of the blocked inverse` : ''}

${LOCATE_WGSL}
// 256 threads: thread t < CM also stands for token t where a per-token job is done (β, G)
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) t: u32) {
  let C = params.C;
  let H = params.H;
  let DV = params.DV;
  let h = wid.z;
  ${cut ? touchAll(prepareBindings(f, null, split)) : ''}
  let loc = locate(wid.y * nwg.x + wid.x);
  let n = loc.z;
  if (n == 0u) { return; }
  let p0 = loc.y;
  let tok = t < CM;
  let live = t < n;
  let pt = p0 + min(t, n - 1u);

  ${dl ? `if (tok) { bs[t] = select(0.0, beta_in[pt * H + h], live); }` : ''}
  ${sc ? `
  // G_t = Σ_{u<=t} g_u: each thread sums its own prefix (C <= 64, cheaper than a scan's barriers).
  if (tok) { gs[t] = select(0.0, g_in[pt * H + h], live); }
  workgroupBarrier();
  var acc = 0.0;
  if (tok) { for (var u = 0u; u <= t; u++) { acc += gs[u]; } }
  workgroupBarrier();
  if (tok) { gs[t] = acc; }
  if (live) { G_out[pt * H + h] = acc; }` : ''}
  ${ch ? `
  // Per key channel: thread t sums channels t, t + NT, ... down the chunk.
  for (var i = t; i < DK; i += NT) {
    var acc = 0.0;
    for (var u = 0u; u < n; u++) {
      let x = ((p0 + u) * H + h) * DK + i;
      acc += g_in[x];
      G_out[x] = acc;
    }
  }
  storageBarrier();` : ''}
  workgroupBarrier();

  // Gram matrices over key tiles, spread over all threads: thread (t / 16, t % 16) accumulates
  // the 4 x 4 block of rows r0.. and columns s0.. in registers (q_r·k_s, and k_r·k_s for delta
  // rules; per channel decay-weighted for gla). Blocks above the diagonal are computed and dropped:
  // balanced threads beat skipping work. (The old form gave each token-thread a row in a
  // per-thread array, which spilled: 37 ms for this kernel at B 4, T 8192, H 8 on the H200.)
  let r0 = (t / 16u) * 4u;
  let s0 = (t % 16u) * 4u;
${rows.map((k) => `  var gq${k} = vec4<f32>(0.0);${dl ? ` var gk${k} = vec4<f32>(0.0);` : ''}`).join('\n')}
${prefetch !== 'none' ? gramPrefetched(ch) : gramStaged(ch)}
    // per key c: three vec4 loads for 32 FMAs (the row-major tile took twelve scalar loads, the
    // column ones 16 threads on one bank)
    for (var c = 0u; c < TK; c++) {
      let ks = tk_[c * GS + t % 16u];
      let qr = tq[c * GS + t / 16u];
      ${dl ? 'let kr = tk_[c * GS + t / 16u];' : ''}
      ${ch ? 'let gsv = tg[c * GS + t % 16u];\n      let gr = tg[c * GS + t / 16u];' : ''}
${rows
  .map((k) => {
    // min(.., 0): the entries kept (s <= r) have G_r − G_s <= 0; the dropped ones must not overflow
    const q = ch ? `qr[${k}] * exp(min(vec4<f32>(gr[${k}]) - gsv, vec4<f32>(0.0)))` : `qr[${k}]`;
    return `      gq${k} += ${q} * ks;${dl ? ` gk${k} += kr[${k}] * ks;` : ''}`;
  })
  .join('\n')}
    }
    workgroupBarrier();
  }
  // Aqk (s <= r) to storage; for delta rules L_rs = β_r (k_r·k_s) e^{G_r − G_s} (s < r) to \`am\`
${rows
  .map(
    (k) => `  for (var m = 0u; m < 4u; m++) {
    let r = r0 + ${k}u;
    let s = s0 + m;
    ${sc ? 'let d = exp(gs[min(r, CM - 1u)] - gs[s]);' : 'let d = 1.0;'}
    if (r < n && s <= r) { A_out[((p0 + r) * H + h) * C + s] = gq${k}[m] * d; }
    ${dl ? `if (r < n && s < r) { amPut(r * CM + s, bs[r] * gk${k}[m] * d); }` : ''}
  }`,
  )
  .join('\n')}
  ${cut === 'gram' ? 'return;' : ''}
  ${dl ? (inverse === 'rows' ? deltaTail(sc) : split ? splitDeltaTail(inverse, cut === 'inverse') : blockedDeltaTail(sc, wb, inverse, prefetch === 'all', cut === 'inverse')) : ''}
}
`;
}

// A cut kernel still uses every binding (as a phony assignment), so the bind group layout is unchanged.
const touchAll = (list: Binding[]) => list.filter((b) => b.kind !== 'uniform').map((b) => `_ = &${b.name};`).join(' ');

/** Round 7's Gram tile loads (benchmark variant): each tile loaded after the previous one's math, its latency exposed. */
function gramStaged(ch: boolean): string {
  return `  for (var i0 = 0u; i0 < DK; i0 += TK) {
    for (var e = t; e < C * TK; e += NT) {
      let u = e / TK;
      let c = i0 + e % TK;
      var qv = 0.0;
      var kv = 0.0;
      ${ch ? 'var gv = 0.0;' : ''}
      if (u < n && c < DK) {
        let x = ((p0 + u) * H + h) * DK + c;
        qv = q_in[x];
        kv = k_in[x];
        ${ch ? 'gv = G_out[x];' : ''}
      }
      let ti = (e % TK) * GS + u / 4u;
      tq[ti][u % 4u] = qv;
      tk_[ti][u % 4u] = kv;
      ${ch ? 'tg[ti][u % 4u] = gv;' : ''}
    }
    workgroupBarrier();`;
}

/**
 * The Gram tile loads one tile ahead: thread t owns elements e = t + j·NT of every tile; the next
 * tile's values are loaded into registers right after this tile is staged, so their latency
 * overlaps this tile's FMAs instead of stalling the workgroup at every one of the DK / TK tiles.
 */
function gramPrefetched(ch: boolean): string {
  const js = Array.from({ length: Math.ceil((MAX_CHUNK * 8) / 256) }, (_, j) => j); // TK <= 8, NT = 256
  const load = (i0: string) =>
    js
      .map(
        (j) => `    {
      let e = t + ${j}u * NT;
      let u = e / TK;
      let c = ${i0} + e % TK;
      nq${j} = 0.0; nk${j} = 0.0;${ch ? ` ng${j} = 0.0;` : ''}
      if (e < C * TK && u < n && c < DK) {
        let x = ((p0 + u) * H + h) * DK + c;
        nq${j} = q_in[x]; nk${j} = k_in[x];${ch ? ` ng${j} = G_out[x];` : ''}
      }
    }`,
      )
      .join('\n');
  return `${js.map((j) => `  var nq${j} = 0.0; var nk${j} = 0.0;${ch ? ` var ng${j} = 0.0;` : ''}`).join('\n')}
${load('0u')}
  for (var i0 = 0u; i0 < DK; i0 += TK) {
${js
  .map(
    (j) => `    {
      let e = t + ${j}u * NT;
      if (e < C * TK) {
        let u = e / TK;
        let ti = (e % TK) * GS + u / 4u;
        tq[ti][u % 4u] = nq${j}; tk_[ti][u % 4u] = nk${j};${ch ? ` tg[ti][u % 4u] = ng${j};` : ''}
      }
    }`,
  )
  .join('\n')}
    workgroupBarrier();
    if (i0 + TK < DK) {
${load('i0 + TK')}
    }`;
}

/** The blocked inverse of I + L in \`am\`: its diagonal blocks, then row blocks I = 1, 2, 3 (see blockedDeltaTail). */
function blockedInverseWgsl(inverse: ChunkInverse): string {
  if (inverse === 'blocked') return diagonalInRegisters + ROW_BLOCKS_VEC4_WGSL;
  return (inverse === 'blocked-steps' ? diagonalBySteps : diagonalByColumns) + ROW_BLOCKS_WGSL;
}

/**
 * The row blocks by four columns (the default): thread e computes row rr of block row I at columns
 * 4cq..4cq+3, one vec4 of a row of A per step, so the longest dot (I = 3) is 47 steps of one scalar
 * and one vec4 load, where one column per thread took up to three dots of 47 steps of two scalar
 * loads. 16 x 4I tasks, at most 192 of the 256 threads.
 */
const ROW_BLOCKS_VEC4_WGSL = /* wgsl */ `  // Row blocks below the first: T = L_{I,<I} (I + A_{<I,<I}), then A_{I,<I} = −(I + A_II) T.
  for (var bi = 1u; bi < 4u && bi * 16u < n; bi++) {
    let rb = bi * 16u;
    let wq = bi * 4u; // column quads left of the diagonal block
    let rr = t / wq;
    let cq = t % wq;
    let r = rb + rr;
    let busy = t < 16u * wq;
    if (busy) {
      // A_mc = 0 for m <= c (upper part stored as 0): the dot may start at the quad's first column
      var val = am[r * (CM / 4u) + cq];
      for (var m = cq * 4u + 1u; m < rb; m++) { val += amAt(r * CM + m) * am[m * (CM / 4u) + cq]; }
      tt[rr * 12u + cq] = val;
    }
    workgroupBarrier();
    if (busy) {
      var val = tt[rr * 12u + cq];
      for (var j = 0u; j < rr; j++) { val += amAt(r * CM + rb + j) * tt[j * 12u + cq]; }
      am[r * (CM / 4u) + cq] = -val;
    }
    workgroupBarrier();
  }`;

/** Row blocks I = 1, 2, 3 of the blocked inverse, one entry per thread and step (rounds 4-10; 'blocked-columns', 'blocked-steps'). */
const ROW_BLOCKS_WGSL = /* wgsl */ `  // Row blocks below the first: T = L_{I,<I} (I + A_{<I,<I}), then A_{I,<I} = −(I + A_II) T.
  for (var bi = 1u; bi < 4u && bi * 16u < n; bi++) {
    let rb = bi * 16u;
    let width = rb;
    for (var e = t; e < 16u * width; e += NT) {
      let rr = e / width;
      let c = e % width;
      var val = amAt((rb + rr) * CM + c);
      for (var m = c + 1u; m < rb; m++) { val += amAt((rb + rr) * CM + m) * amAt(m * CM + c); }
      tt[e] = val;
    }
    workgroupBarrier();
    for (var e = t; e < 16u * width; e += NT) {
      let rr = e / width;
      let c = e % width;
      var val = tt[e];
      for (var j = 0u; j < rr; j++) { val += amAt((rb + rr) * CM + rb + j) * tt[j * width + c]; }
      amPut((rb + rr) * CM + c, -val);
    }
    workgroupBarrier();
  }`;

/**
 * The UT transform of a delta chunk, A = (I + L)^{-1}, W = A((β e^G) ⊙ K), U = A(β ⊙ V), in
 * blocks (as fla's solve_tril): the four 16 x 16 diagonal blocks of A by forward substitution
 * side by side (`diagonalByColumns`, or round 6's `diagonalBySteps`), then row
 * block I = 1, 2, 3 from the rows above it, A_{I,<I} = −A_II (L_{I,<I} A_{<I,<I}), as two small
 * matmuls over all threads. W and U are then tiled matmuls: a WB-column tile of the right-hand
 * side staged in workgroup memory by coalesced loads, each thread 4 rows x WB/16 columns in
 * registers (the row-by-row form did one output per thread per step, two workgroup loads per FMA).
 * Entries of `am` on and above the diagonal stay 0 (workgroup memory starts zeroed and only
 * s < r is written), so the unit diagonal is implicit and loops may run past it.
 */
function blockedDeltaTail(sc: boolean, wb: number, inverse: ChunkInverse, prefetch = true, cutAfterInverse = false): string {
  const cw = wb / 16;
  const vt = `vec${cw}<f32>`;
  const rows = [0, 1, 2, 3];
  // This thread's four rows of an X tile to storage (rows < n, columns < width).
  const storeRows = (col0: string, width: string, out: (u: string, c: string) => string) =>
    rows
      .map(
        (k) => `    if (wr + ${k}u < n) {
      for (var m = 0u; m < ${cw}u; m++) {
        let c = ${col0} + wc * ${cw}u + m;
        if (c < ${width}) { ${out(`wr + ${k}u`, 'c')} = x${k}[m]; }
      }
    }`,
      )
      .join('\n');
  // One W / U pass: X = Y + (strictly lower A) Y, Y = rhs(u, c) over \`width\` columns from storage.
  const matmul = (width: string, col0: string, rhs: (u: string, c: string) => string, out: (u: string, c: string) => string) => `
  for (var ${col0} = 0u; ${col0} < ${width}; ${col0} += ${wb}u) {
    for (var e = t; e < CM * 16u; e += NT) {
      let u = e / 16u;
      var y = ${vt}(0.0);
      for (var m = 0u; m < ${cw}u; m++) {
        let c = ${col0} + (e % 16u) * ${cw}u + m;
        if (u < n && c < ${width}) { y[m] = ${rhs('u', 'c')}; }
      }
      stg[e] = y;
    }
    workgroupBarrier();
${rows.map((k) => `    var x${k} = stg[(wr + ${k}u) * 16u + wc];`).join('\n')}
    // A_rs = 0 for s >= r: the loop may run to the block's last row
    for (var s = 0u; s < min(wr + 3u, n); s++) {
      let y = stg[s * 16u + wc];
${rows.map((k) => `      x${k} += amAt((wr + ${k}u) * CM + s) * y;`).join('\n')}
    }
${storeRows(col0, width, out)}
    workgroupBarrier();
  }`;
  const rowBlocks = `${blockedInverseWgsl(inverse)}
${cutAfterInverse ? '  if (t < CM) { W_out[((p0 + min(t, n - 1u)) * H + h) * DK] = amAt(t * CM + t / 2u); }\n  return;' : ''}`;
  const wRhs = (u: string, c: string) => `k_in[((p0 + ${u}) * H + h) * DK + ${c}] * bs[${u}]${sc ? ` * exp(gs[${u}])` : ''}`;
  const wOut = (u: string, c: string) => `W_out[((p0 + ${u}) * H + h) * DK + ${c}]`;
  const uRhs = (u: string, c: string) => `v_in[((p0 + ${u}) * H + h) * DV + ${c}] * bs[${u}]`;
  const uOut = (u: string, c: string) => `U_out[((p0 + ${u}) * H + h) * DV + ${c}]`;
  if (!prefetch) {
    return /* wgsl */ `
  workgroupBarrier();
${rowBlocks}
  // W and U: thread (t / 16, t % 16) owns rows wr..wr+3 and column group wc of each tile
  let wr = (t / 16u) * 4u;
  let wc = t % 16u;
${matmul('DK', 'i0', wRhs, wOut)}
${matmul('DV', 'j0', uRhs, uOut)}`;
  }
  // Prefetched: thread t stages elements e = t + j·NT (j < 4) of every tile; the next tile is
  // loaded into registers while this one is multiplied, and the first W tile before the inverse,
  // whose serial substitution then hides its latency.
  const js = [0, 1, 2, 3];
  const load = (width: string, col0: string, rhs: (u: string, c: string) => string) =>
    js
      .map(
        (j) => `    {
      let e = t + ${j}u * NT;
      let u = e / 16u;
      ny${j} = ${vt}(0.0);
      for (var m = 0u; m < ${cw}u; m++) {
        let c = ${col0} + (e % 16u) * ${cw}u + m;
        if (u < n && c < ${width}) { ny${j}[m] = ${rhs('u', 'c')}; }
      }
    }`,
      )
      .join('\n');
  const tile = (width: string, col0: string, next: string, out: (u: string, c: string) => string) => `
  for (var ${col0} = 0u; ${col0} < ${width}; ${col0} += ${wb}u) {
${js.map((j) => `    stg[t + ${j}u * NT] = ny${j};`).join('\n')}
    workgroupBarrier();
${next}
${rows.map((k) => `    var x${k} = stg[(wr + ${k}u) * 16u + wc];`).join('\n')}
    // four s per step: a row's A_r,s..s+3 is one vec4 of \`am\` (8 workgroup loads for 64 FMAs,
    // where one s at a time took 20); A_rs = 0 for s >= r, so whole quads may run past the diagonal
    let se = min(wr + 3u, n);
    var s = 0u;
    for (; s + 4u <= se; s += 4u) {
${[0, 1, 2, 3].map((m) => `      let y${m} = stg[(s + ${m}u) * 16u + wc];`).join('\n')}
${rows.map((k) => `      let a${k} = am[(wr + ${k}u) * (CM / 4u) + s / 4u];\n      x${k} += a${k}.x * y0 + a${k}.y * y1 + a${k}.z * y2 + a${k}.w * y3;`).join('\n')}
    }
    for (; s < se; s++) {
      let y = stg[s * 16u + wc];
${rows.map((k) => `      x${k} += amAt((wr + ${k}u) * CM + s) * y;`).join('\n')}
    }
${storeRows(col0, width, out)}
    workgroupBarrier();
  }`;
  return /* wgsl */ `
  let wr = (t / 16u) * 4u;
  let wc = t % 16u;
${js.map((j) => `  var ny${j} = ${vt}(0.0);`).join('\n')}
${load('DK', '0u', wRhs)}
  workgroupBarrier();
${rowBlocks}
  // W and U: thread (t / 16, t % 16) owns rows wr..wr+3 and column group wc of each tile
${tile('DK', 'i0', `    if (i0 + ${wb}u < DK) {
${load('DK', `i0 + ${wb}u`, wRhs)}
    } else {
${load('DV', '0u', uRhs)}
    }`, wOut)}
${tile('DV', 'j0', `    if (j0 + ${wb}u < DV) {
${load('DV', `j0 + ${wb}u`, uRhs)}
    }`, uOut)}`;
}

/**
 * The split UT transform (`ChunkWu` 'split', the default): `prepare` inverts I + L in blocks as
 * above and writes A's strictly lower part to storage ([P,H,C] like Aqk); the `wu` kernel then
 * computes W and U over all (chunk, head, 64-column block) at once, as `output` does O. Inside
 * `prepare` the W / U rows of a triangle are uneven work (the warps holding the last rows do 15 quad
 * steps, the first one), and its tiles hold 16 KiB of workgroup memory through the whole kernel.
 */
function splitDeltaTail(inverse: ChunkInverse, cutAfterInverse: boolean): string {
  return /* wgsl */ `
  workgroupBarrier();
${blockedInverseWgsl(inverse)}
  ${cutAfterInverse ? 'return;' : ''}
  for (var e = t; e < CM * CM; e += NT) {
    let r = e / CM;
    let s = e % CM;
    if (r < n && s < r) { Ainv_out[((p0 + r) * H + h) * C + s] = amAt(e); }
  }`;
}

/**
 * The four 16 x 16 diagonal blocks of A (the default), one thread per (block, column c), the column
 * in registers a0..a15 with constant indices: starting from e_c, a_r = −Σ_{m<r} L_rm a_m for r > c
 * gives A_rc = −(L_rc + Σ_{c<m<r} L_rm A_mc). Rows of L are read as vec4 (the same four for the
 * block's 16 threads, a broadcast); no store feeds a later load, so nothing waits on workgroup
 * memory but the loads of L. The results replace L below the diagonal after one barrier.
 */
const diagonalInRegisters = (() => {
  const ms = Array.from({ length: 16 }, (_, m) => m);
  const rowsOfL = ms
    .slice(1)
    .map((r) => {
      const quads = Array.from({ length: Math.ceil(r / 4) }, (_, q) => q);
      const terms = ms.slice(0, r).map((m) => `l${Math.floor(m / 4)}[${m % 4}] * a${m}`);
      return `    {
${quads.map((q) => `      let l${q} = am[(db + ${r}u) * (CM / 4u) + db / 4u + ${q}u];`).join('\n')}
      a${r} = select(a${r}, -(${terms.join(' + ')}), ${r}u > dc);
    }`;
    })
    .join('\n');
  return /* wgsl */ `
  let db = (t / 16u) * 16u;
  let dc = t % 16u;
${ms.map((m) => `  var a${m} = select(0.0, 1.0, dc == ${m}u);`).join('\n')}
  if (t < 64u) {
${rowsOfL}
  }
  workgroupBarrier();
  if (t < 64u) {
${ms.slice(1).map((m) => `    if (${m}u > dc) { amPut((db + ${m}u) * CM + db + dc, a${m}); }`).join('\n')}
  }
  workgroupBarrier();
`;
})();

/**
 * The four 16 x 16 diagonal blocks of A, one thread per (block, column) with no barrier: column c
 * of A_II depends only on L and on column c itself, A_rc = −(L_rc + Σ_{c<m<r} L_rm A_mc), so thread
 * (t / 16, t % 16) runs its column down the rows alone. Results go to the block's (zero) upper
 * triangle, transposed, so rows of L stay intact while other columns read them; one pass over all
 * threads then moves them below the diagonal and zeroes the upper triangle again (the W / U loops
 * run past the diagonal and rely on those zeros). Round 6 took 15 steps of two barriers each.
 */
const diagonalByColumns = /* wgsl */ `
  let db = (t / 16u) * 16u;
  let dc = t % 16u;
  if (t < 64u) {
    for (var r = dc + 1u; r < 16u; r++) {
      var val = amAt((db + r) * CM + db + dc);
      for (var m = dc + 1u; m < r; m++) { val += amAt((db + r) * CM + db + m) * amAt((db + dc) * CM + db + m); }
      amPut((db + dc) * CM + db + r, -val);
    }
  }
  workgroupBarrier();
  // 4 blocks x 256 entries over 256 threads; each (r, c > r) pair is one thread's alone
  for (var e = t; e < 1024u; e += NT) {
    let b = (e / 256u) * 16u;
    let r = (e / 16u) % 16u;
    let c = e % 16u;
    if (c > r) {
      amPut((b + c) * CM + b + r, amAt((b + r) * CM + b + c));
      amPut((b + r) * CM + b + c, 0.0);
    }
  }
  workgroupBarrier();
`;

/** Round 6's diagonal blocks (benchmark variant): row j of each block per step, 64 of 256 threads busy. */
const diagonalBySteps = /* wgsl */ `
  // Diagonal blocks in place, thread (block t / 16, column t % 16): row j of each block from
  // its rows < j, A_rc = −(L_rc + Σ_{c<m<r} L_rm A_mc); row r still holds L while it is read.
  let db = (t / 16u) * 16u;
  let dc = t % 16u;
  for (var j = 1u; j < 16u; j++) {
    var val = 0.0;
    if (t < 64u && dc < j) {
      let r = db + j;
      val = amAt(r * CM + db + dc);
      for (var m = dc + 1u; m < j; m++) { val += amAt(r * CM + db + m) * amAt((db + m) * CM + db + dc); }
    }
    workgroupBarrier();
    if (t < 64u && dc < j) { amPut((db + j) * CM + db + dc, -val); }
    workgroupBarrier();
  }
`;

/** The row-by-row UT transform (round 3; benchmark variant): forward substitution one row per barrier step, W / U one output per thread. */
function deltaTail(sc: boolean): string {
    return /* wgsl */ `
  workgroupBarrier();
  // Forward substitution in place, row r from rows < r (unit diagonal implicit):
  // A_rt = −(L_rt + Σ_{t<m<r} L_rm A_mt). Row r still holds L while it is read.
  for (var r = 1u; r < n; r++) {
    var val = 0.0;
    if (t < r) {
      val = amAt(r * CM + t);
      for (var m = t + 1u; m < r; m++) { val += amAt(r * CM + m) * amAt(m * CM + t); }
    }
    workgroupBarrier();
    if (t < r) { amPut(r * CM + t, -val); }
    workgroupBarrier();
  }
  // W rows over key tiles, then U rows over value tiles: X_u = Y_u + Σ_{s<u} A_us Y_s.
${rowTiles('i0', 'DK', 'k_in', 'W_out', `bs[u]${sc ? ' * exp(gs[u])' : ''}`, 'kv')}
${rowTiles('j0', 'DV', 'v_in', 'U_out', 'bs[u]', 'vv')}`;
}

/** One of W / U in the row-by-row variant: X_u = Y_u + Σ_{s<u} A_us Y_s over column tiles of width TK. */
function rowTiles(c0: string, width: string, input: string, output: string, scale: string, load: string): string {
  return /* wgsl */ `  for (var ${c0} = 0u; ${c0} < ${width}; ${c0} += TK) {
    for (var e = t; e < C * TK; e += NT) {
      let u = e / TK;
      let c = ${c0} + e % TK;
      var ${load} = 0.0;
      if (u < n && c < ${width}) { ${load} = ${input}[((p0 + u) * H + h) * ${width} + c] * ${scale}; }
      tk_[e / 4u][e % 4u] = ${load};
    }
    workgroupBarrier();
    for (var e = t; e < C * TK; e += NT) {
      let u = e / TK;
      let cc = e % TK;
      if (u < n && ${c0} + cc < ${width}) {
        var val = tk_[e / 4u][e % 4u];
        for (var s = 0u; s < u; s++) { val += amAt(u * CM + s) * tk_[(s * TK + cc) / 4u][(s * TK + cc) % 4u]; }
        ${output}[((p0 + u) * H + h) * ${width} + ${c0} + cc] = val;
      }
    }
    workgroupBarrier();
  }`;
}

/**
 * \`acc0 op Σ_i a(x0, i) h[i]\` and the same for x1, over i < DK against h in workgroup memory,
 * four i at a time: the eight storage loads of a step are independent, so their latencies
 * overlap (one at a time, the scan waited on memory for every i).
 */
function dotOverDk(acc0: string, acc1: string, a: (x: string, i: string) => string): string {
  const four = [0, 1, 2, 3];
  return `{
        var i = 0u;
        for (; i + 4u <= DK; i += 4u) {
${four.map((m) => `          let pa${m} = ${a('x0', `i + ${m}u`)};\n          let pb${m} = ${a('x1', `i + ${m}u`)};`).join('\n')}
${four.map((m) => `          let hv${m} = hsh[(i + ${m}u) * CQ + q4];`).join('\n')}
          ${acc0} pa0 * hv0 + pa1 * hv1 + pa2 * hv2 + pa3 * hv3;
          ${acc1} pb0 * hv0 + pb1 * hv1 + pb2 * hv2 + pb3 * hv3;
        }
        for (; i < DK; i++) {
          let hv = hsh[i * CQ + q4];
          ${acc0} ${a('x0', 'i')} * hv;
          ${acc1} ${a('x1', 'i')} * hv;
        }
      }`;
}

/**
 * The same over vec4 bindings (dk a multiple of 4): \`a(x, i4)\` is the vec4 of entries 4·i4..,
 * eight of them per step (two quads of two tokens), so one storage load brings four entries
 * where the scalar form issued four loads, and twice as many are in flight per step.
 */
function dotOverDk4(acc0: string, acc1: string, a: (x: string, i4: string) => string, step = 2): string {
  const quad = (p: string, m: number) => `${p}.x * hv${m}0 + ${p}.y * hv${m}1 + ${p}.z * hv${m}2 + ${p}.w * hv${m}3`;
  const hv = (m: number, i4: string) => [0, 1, 2, 3].map((l) => `          let hv${m}${l} = hsh[(4u * (${i4}) + ${l}u) * CQ + q4];`).join('\n');
  const ms = Array.from({ length: step }, (_, m) => m);
  return `{
        var i4 = 0u;
        for (; i4 + ${step}u <= DK4; i4 += ${step}u) {
${ms.map((m) => `          let pa${m} = ${a('x0', `i4 + ${m}u`)};\n          let pb${m} = ${a('x1', `i4 + ${m}u`)};`).join('\n')}
${ms.map((m) => hv(m, `i4 + ${m}u`)).join('\n')}
          ${acc0} ${ms.map((m) => quad(`pa${m}`, m)).join(' + ')};
          ${acc1} ${ms.map((m) => quad(`pb${m}`, m)).join(' + ')};
        }
        for (; i4 < DK4; i4++) {
          let pa0 = ${a('x0', 'i4')};
          let pb0 = ${a('x1', 'i4')};
${hv(0, 'i4')}
          ${acc0} ${quad('pa0', 0)};
          ${acc1} ${quad('pb0', 0)};
        }
      }`;
}

// Phase B's a0 += Σ_{s<=u} Aqk[x0, s] V'_s and a1 += Σ_{s<=u+1} Aqk[x1, s] V'_s, Aqk one f32 per load.
function aqkTimesV(): string {
  return `      // four s at a time: the eight Aqk loads of a step are issued together (one latency, not four)
      var s = 0u;
      for (; s + 4u <= u + 1u; s += 4u) {
${[0, 1, 2, 3].map((m) => `        let aa${m} = A_in[x0 * C + s + ${m}u];
        let ab${m} = A_in[x1 * C + s + ${m}u];`).join('\n')}
${[0, 1, 2, 3].map((m) => `        let w${m} = vsh[(s + ${m}u) * CQ + q4];`).join('\n')}
        a0 += aa0 * w0 + aa1 * w1 + aa2 * w2 + aa3 * w3;
        a1 += ab0 * w0 + ab1 * w1 + ab2 * w2 + ab3 * w3;
      }
      for (; s <= u; s++) {
        let v = vsh[s * CQ + q4];
        a0 += A_in[x0 * C + s] * v;
        a1 += A_in[x1 * C + s] * v;
      }
      // row u1 = u + 1 also has the diagonal term s = u + 1
      a1 += A_in[x1 * C + u1] * vsh[u1 * CQ + q4];`;
}

// The same with Aqk bound as vec4 (C a multiple of 4): a row's four s in one load.
function aqkTimesV4(): string {
  return `      let C4 = C / 4u;
      var s = 0u;
      for (; s + 4u <= u + 1u; s += 4u) {
        let aa = A_in[x0 * C4 + s / 4u];
        let ab = A_in[x1 * C4 + s / 4u];
${[0, 1, 2, 3].map((m) => `        let w${m} = vsh[(s + ${m}u) * CQ + q4];`).join('\n')}
        a0 += aa.x * w0 + aa.y * w1 + aa.z * w2 + aa.w * w3;
        a1 += ab.x * w0 + ab.y * w1 + ab.z * w2 + ab.w * w3;
      }
      // the loop stopped at s >= u - 2, so the tail s..u and row u1's diagonal (u1 <= u + 1) lie
      // in quad s / 4; entries past the diagonal are not read (the scratch may hold stale values)
      let ta = A_in[x0 * C4 + s / 4u];
      let tb = A_in[x1 * C4 + s / 4u];
      for (var m = 0u; s + m <= u; m++) {
        let v = vsh[(s + m) * CQ + q4];
        a0 += ta[m] * v;
        a1 += tb[m] * v;
      }
      a1 += tb[u1 - s] * vsh[u1 * CQ + q4];`;
}

/**
 * The sequential scan over a segment's chunks. Per chunk of n tokens, three phases separated by
 * barriers, every one spread over all threads of the workgroup (the old form gave each thread a
 * whole state column and did each chunk's matmuls one column at a time, with per-thread arrays
 * that spilled: on the H200 that was 0.97 ms per chunk step):
 *   A  V' = U − W h         items of 2 tokens x 4 columns, dot products over dk against h in
 *                           workgroup memory; V' goes to workgroup memory
 *   B  O  = (Q ⊙ e^G) h + Aqk V'     the same items; O straight to storage
 *   C  h ← e^{G_n} h + (K ⊙ e^{G_n − G})ᵀ V'     each thread its 4 x 4 block, in registers,
 *                           then copied to workgroup memory for the next chunk's A and B
 */
/** Benchmark-only cuts of `scan` (see PrepareCut): without the W h correction (phase A's dot), the output (phase B) or the state update (phase C). */
export type ScanCut = 'no-correction' | 'no-output' | 'no-update';

/** Average segment length from which the scan keeps (segment, head, block) order (see makeChunkEncoder). */
const LONG_CHAINS = 8192;

/**
 * `ordered`: the scan's workgroups in one linear order with the segments from params.FS on (the
 * shared memory's, the longest chains) first, instead of (segment, head, column block): the device
 * hands out workgroups roughly in index order, so the long chains spread over the
 * multiprocessors. The counts are uniforms, so one pipeline serves every batch and head count.
 */
export function scanKernelWgsl(f: ChunkForm, dk: number, maxColumns = 32, loads: ScanLoads = 'vec4', dvQuads = false, cQuads = false, cut?: ScanCut, split = false, wide = false, ordered = false): string {
  const sc = f.decay === 'scalar';
  const ch = f.decay === 'channel';
  const { rq, cq, nt } = scanLayout(dk, maxColumns);
  const rows = [0, 1, 2, 3];
  // vec4 bindings need whole quads of keys per token
  const v4 = loads !== 'scalar' && dk % 4 === 0;
  // U / O as vec4 need whole quads of columns (dv % 4 = 0), Aqk as vec4 whole quads of a row (C % 4 = 0)
  const io4 = loads === 'vec4' && dvQuads;
  const a4 = loads === 'vec4' && cQuads;
  // Phase C's token group: with vec4 keys a token costs two loads, so twice the tokens fit in flight
  const group = v4 ? (wide ? 16 : 8) : 4;
  const xyzw = ['x', 'y', 'z', 'w'];
  // q ⊙ e^G for scalar decay is applied once per token after the dot product
  // Phase C, token `tok` as the j-th of a group: its loads (V' row, decay scale, keys of this
  // thread's four rows), then its FMAs into h0..h3.
  const cTokenLoads = (j: number, tok: string) => {
    if (v4) {
      // this thread's four rows r0..r0+3 of key \`tok\` are one vec4 (r0 is a multiple of 4)
      const scale = sc ? ` * exp(gl - gs[${tok}])` : ch ? ` * exp(G_in[xl * DK4 + r0 / 4u] - G_in[x${j} * DK4 + r0 / 4u])` : '';
      return [
        `      let v${j} = vsh[(${tok}) * CQ + cq];`,
        `      let x${j} = (c0 + ${tok}) * H + h;`,
        `      let kk${j} = k_in[x${j} * DK4 + r0 / 4u]${scale};`,
      ].join('\n');
    }
    const loads = [
      `      let v${j} = vsh[(${tok}) * CQ + cq];`,
      `      let x${j} = (c0 + ${tok}) * H + h;`,
      sc ? `      let ks${j} = exp(gl - gs[${tok}]);` : '',
    ];
    for (const k of rows) {
      const r = `min(r0 + ${k}u, DK - 1u)`;
      const scale = sc ? ` * ks${j}` : ch ? ` * exp(G_in[xl * DK + ${r}] - G_in[x${j} * DK + ${r}])` : '';
      loads.push(`      let k${j}${k} = kAt(x${j}, r0 + ${k}u)${scale};`);
    }
    return loads.filter((l) => l).join('\n');
  };
  const cTokenFmas = (j: number) => rows.map((k) => (v4 ? `      h${k} += kk${j}.${xyzw[k]} * v${j};` : `      h${k} += k${j}${k} * v${j};`)).join('\n');
  const qTerm = (x: string, i: string) => (ch ? `q_in[${x} * DK + ${i}] * exp(G_in[${x} * DK + ${i}])` : `q_in[${x} * DK + ${i}]`);
  const qTerm4 = (x: string, i4: string) => (ch ? `q_in[${x} * DK4 + ${i4}] * exp(G_in[${x} * DK4 + ${i4}])` : `q_in[${x} * DK4 + ${i4}]`);
  const groupIdx = Array.from({ length: group }, (_, j) => j);
  return /* wgsl */ `
const DK: u32 = ${dk}u;
${v4 ? `const DK4: u32 = ${dk / 4}u;` : ''}
const CQ: u32 = ${cq}u;
const NT: u32 = ${nt}u;
${PARAMS_STRUCT}
${declareBindings(scanBindings(f, null, v4, io4, a4, split))}
var<workgroup> hsh: array<vec4<f32>, ${4 * rq * cq}>; // h[i][column quad]
var<workgroup> vsh: array<vec4<f32>, ${MAX_CHUNK * cq}>; // V'[u][column quad]
var<workgroup> gs: array<f32, ${MAX_CHUNK}>;

// Four consecutive values of a [rows, DV] row-major array from column c, zero past DV.
fn stateQuad(base: u32, c: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var m = 0u; m < 4u; m++) { if (c + m < params.DV) { r[m] = state[base + c + m]; } }
  return r;
}
${io4 ? `// Row x, column quad c4 of U / O bound as vec4 (dv a multiple of 4: a quad is all in or all out).
fn uQuad(x: u32, c4: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  if (c4 < params.DV / 4u) { r = u_in[x * (params.DV / 4u) + c4]; }
  return r;
}
fn storeO(x: u32, c4: u32, v: vec4<f32>) {
  ${split ? '' : 'if (c4 < params.DV / 4u) { o_out[x * (params.DV / 4u) + c4] = v; }'}
}
${split && f.delta ? `fn storeVn(x: u32, c4: u32, v: vec4<f32>) {
  if (c4 < params.DV / 4u) { vn_out[x * (params.DV / 4u) + c4] = v; }
}` : ''}` : `// Row x, columns 4·c4.. of U / O, one f32 at a time (zero / not written past DV).
fn uQuad(x: u32, c4: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var m = 0u; m < 4u; m++) { if (4u * c4 + m < params.DV) { r[m] = u_in[x * params.DV + 4u * c4 + m]; } }
  return r;
}
fn storeO(x: u32, c4: u32, v: vec4<f32>) {
  ${split ? '' : 'for (var m = 0u; m < 4u; m++) { if (4u * c4 + m < params.DV) { o_out[x * params.DV + 4u * c4 + m] = v[m]; } }'}
}
${split && f.delta ? `fn storeVn(x: u32, c4: u32, v: vec4<f32>) {
  for (var m = 0u; m < 4u; m++) { if (4u * c4 + m < params.DV) { vn_out[x * params.DV + 4u * c4 + m] = v[m]; } }
}` : ''}`}
${v4 ? '' : `// k[x, r] (zero for the padding rows r >= DK)
fn kAt(x: u32, r: u32) -> f32 { return select(0.0, k_in[x * DK + min(r, DK - 1u)], r < DK); }`}

@compute @workgroup_size(${nt})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32${ordered ? ', @builtin(num_workgroups) nwg: vec3u' : ''}) {
  let C = params.C;
  let H = params.H;
  let DV = params.DV;
${
  ordered
    ? `  let w = wid.y * nwg.x + wid.x; // shared segments first (ordered), folded onto two dimensions when large
  let NB = params.NB;
  if (w >= params.S * H * NB) { return; }
  let nsh = (params.S - params.FS) * H * NB;
  let first = w < nsh;
  let v = select(w - nsh, w, first);
  let seg = select(v / (H * NB), params.FS + w / (H * NB), first);
  let h = (v / NB) % H;
  let blk = v % NB;`
    : `  let seg = wid.x;
  let h = wid.y;
  let blk = wid.z;`
}
  ${cut ? touchAll(scanBindings(f, null, v4, io4, a4, split)) : ''}
  let cq = lid % CQ;
  let r0 = (lid / CQ) * 4u;
  let colBase = blk * CQ * 4u;
  let p0 = cu[seg];
  let p1 = cu[seg + 1u];
  let sb = (seg * H + h) * DK * DV;
${rows.map((k) => `  var h${k} = select(vec4<f32>(0.0), stateQuad(sb + min(r0 + ${k}u, DK - 1u) * DV, colBase + cq * 4u), r0 + ${k}u < DK);`).join('\n')}
${rows.map((k) => `  hsh[(r0 + ${k}u) * CQ + cq] = h${k};`).join('\n')}
  for (var c0 = p0; c0 < p1; c0 += C) {
    let n = min(C, p1 - c0);
    workgroupBarrier(); // h of the previous chunk is in hsh; its V' and G are no longer read
    ${sc ? 'for (var u = lid; u < n; u += NT) { gs[u] = G_in[(c0 + u) * H + h]; }' : ''}
    workgroupBarrier();
${split ? `    // the state at the chunk's start, for the output kernel (this thread's 4 x 4 block)
    let hb = ((p0 / C + seg + (c0 - p0) / C) * H + h) * DK;
${rows.map((k) => (io4 ? `    if (r0 + ${k}u < DK && colBase / 4u + cq < DV / 4u) { hc_out[((hb + r0 + ${k}u) * DV) / 4u + colBase / 4u + cq] = h${k}; }` : `    if (r0 + ${k}u < DK) { for (var m = 0u; m < 4u; m++) { let c = colBase + cq * 4u + m; if (c < DV) { hc_out[(hb + r0 + ${k}u) * DV + c] = h${k}[m]; } } }`)).join('\n')}
` : ''}
    // A: V' = U − W h (V' = V without the delta rule), two tokens per item
    let items = ((n + 1u) / 2u) * CQ;
    for (var e = lid; e < items; e += NT) {
      let q4 = e % CQ;
      let u = (e / CQ) * 2u;
      let u1 = min(u + 1u, n - 1u);
      let x0 = (c0 + u) * H + h;
      let x1 = (c0 + u1) * H + h;
      var a0 = uQuad(x0, colBase / 4u + q4);
      var a1 = uQuad(x1, colBase / 4u + q4);
      ${f.delta && cut !== 'no-correction' ? (v4 ? dotOverDk4('a0 -=', 'a1 -=', (x, i4) => `W_in[${x} * DK4 + ${i4}]`, wide ? 4 : 2) : dotOverDk('a0 -=', 'a1 -=', (x, i) => `W_in[${x} * DK + ${i}]`)) : ''}
      vsh[u * CQ + q4] = a0;
      if (u + 1u < n) { vsh[(u + 1u) * CQ + q4] = a1; }
      ${split && f.delta ? `storeVn(x0, colBase / 4u + q4, a0);
      if (u + 1u < n) { storeVn(x1, colBase / 4u + q4, a1); }` : ''}
    }
    workgroupBarrier();

${cut === 'no-output' || split ? '' : `    // B: O = (Q ⊙ e^G) h + Aqk V'
    for (var e = lid; e < items; e += NT) {
      let q4 = e % CQ;
      let u = (e / CQ) * 2u;
      let u1 = min(u + 1u, n - 1u);
      let x0 = (c0 + u) * H + h;
      let x1 = (c0 + u1) * H + h;
      var a0 = vec4<f32>(0.0);
      var a1 = vec4<f32>(0.0);
      ${v4 ? dotOverDk4('a0 +=', 'a1 +=', qTerm4, wide ? 4 : 2) : dotOverDk('a0 +=', 'a1 +=', qTerm)}
      ${sc ? 'a0 *= exp(gs[u]); a1 *= exp(gs[u1]);' : ''}
${a4 ? aqkTimesV4() : aqkTimesV()}
      storeO(x0, colBase / 4u + q4, a0);
      if (u + 1u < n) { storeO(x1, colBase / 4u + q4, a1); }
    }

`}
    // C: h ← e^{G_n} h + (K ⊙ e^{G_n − G})ᵀ V', this thread's rows r0..r0+3 and column quad cq
    let xl = (c0 + n - 1u) * H + h;
${cut === 'no-update' ? '' : `    ${sc ? `let gl = gs[n - 1u];
    let dl = exp(gl);
${rows.map((k) => `    h${k} *= dl;`).join('\n')}` : ''}
    ${ch && !v4 ? rows.map((k) => `h${k} *= select(1.0, exp(G_in[xl * DK + min(r0 + ${k}u, DK - 1u)]), r0 + ${k}u < DK);`).join('\n    ') : ''}
    ${ch && v4 ? `let gd = exp(G_in[xl * DK4 + r0 / 4u]);\n${rows.map((k) => `    h${k} *= gd.${xyzw[k]};`).join('\n')}` : ''}
    // \`group\` tokens at a time: all their key loads are issued before the first FMA waits
    var u = 0u;
    for (; u + ${group}u <= n; u += ${group}u) {
${groupIdx.map(j => cTokenLoads(j, 'u + ' + j + 'u')).join('\n')}
${groupIdx.map(j => cTokenFmas(j)).join('\n')}
    }
    for (; u < n; u++) {
${cTokenLoads(0, 'u')}
${cTokenFmas(0)}
    }
`}
    workgroupBarrier(); // B has finished reading hsh
${rows.map((k) => `    hsh[(r0 + ${k}u) * CQ + cq] = h${k};`).join('\n')}
  }
${rows.map((k) => `  if (r0 + ${k}u < DK) { for (var m = 0u; m < 4u; m++) { let c = colBase + cq * 4u + m; if (c < DV) { state[sb + (r0 + ${k}u) * DV + c] = h${k}[m]; } } }`).join('\n')}
}
`;
}

/** An operand of tiledProduct: its element at (row, column) as WGSL, and when that element exists (else 0). */
interface Operand {
  at: (x: string, y: string) => string;
  ok: (x: string, y: string) => string;
}

const KT = 16; // tiledProduct's inner-dimension slice
/** tiledProduct's workgroup memory: the left slice [kk][token quad] and the right one [kk][column quad] */
const TILED_PRODUCT_WORKGROUP = `const KT: u32 = ${KT}u;
// the left slice's row stride, one vec4 of padding (see GS in prepare): 16 x 2 staging stores of a
// warp on 32 banks instead of 2
const AS: u32 = ${MAX_CHUNK / 4 + 1}u;
var<workgroup> as_: array<vec4<f32>, ${KT * (MAX_CHUNK / 4 + 1)}>;
var<workgroup> bs_: array<vec4<f32>, ${KT * 16}>;`;
const SLICE_JS = [0, 1, 2, 3]; // CM x KT = KT x 64 = 1024 elements of a slice, 4 per thread
/** tiledProduct's registers: the accumulators (row r0 + k, four columns) and the next slice's elements */
const TILED_PRODUCT_REGISTERS = [0, 1, 2, 3].map((k) => `  var acc${k} = vec4<f32>(0.0);`).join('\n') + '\n' + SLICE_JS.map((j) => `  var na${j} = 0.0; var nb${j} = 0.0;`).join('\n');

/**
 * One tiled product of `output` and `wu` (256 threads, CM x 64 outputs, thread (t / 16, t % 16) the
 * 4 x 4 block at rows r0.., columns c0 + 4 (t % 16)..): acc_k += Σ_i a(r0 + k, i) b(i, c) over
 * i = k0 = 0, KT, .. < bound, each slice staged in workgroup memory as vec4 (rows of `a` as token
 * quads, as the Gram tiles of `prepare`) and the next one loaded into registers while this one is
 * multiplied. `c0` is the workgroup's first column.
 */
function tiledProduct(k0: string, bound: string, a: Operand, b: Operand, c0: string, lowerTriangle?: 'strict' | 'diagonal', b2?: Operand): string {
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
function tiledKernelPrelude(dk: number, bindings: Binding[], workgroup: string): string {
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

/**
 * The `wu` kernel of the split UT transform (`ChunkWu` 'split'): over all (chunk, head, block of 64
 * columns) at once,
 *     W = Y + A Y with Y = (β e^G) ⊙ K,     U = Y' + A Y' with Y' = β ⊙ V
 * (A strictly lower from `prepare`, the unit diagonal added as Y itself), both in one tiled product
 * (tiledProduct's second right operand): block cb computes W's columns cb·64.. (where < dk) and U's
 * (where < dv), so each slice of A is staged once for both.
 */
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

/**
 * The `output` kernel of the split form (fla's chunk_fwd_o): with the scan writing V' and the state
 * at every chunk start h_c, each chunk's output is independent of the others,
 *     O = (Q ⊙ e^G) h_c + Aqk V'
 * so it runs over all (chunk, head, block of 64 columns) at once instead of inside the sequential
 * scan, where it was its largest phase (docs/perf.md, round 8). One workgroup of 256 threads, thread
 * (t / 16, t % 16) owns a 4 x 4 block of O; both products are tiled matmuls over KT-wide slices of
 * the inner dimension (dk, then the chunk's tokens), staged in workgroup memory as vec4 (rows of the
 * left operand as token quads, as the Gram tiles of `prepare`), the next slice loaded into registers
 * while this one is multiplied. Aqk holds stale values past its diagonal, so s > r is masked.
 */
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

function outputBindings(f: ChunkForm, b: ChunkBuffers | null): Binding[] {
  const x = (buf: GPUBuffer | undefined) => buf as GPUBuffer;
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

interface ChunkBuffers {
  cu: GPUBuffer;
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  g?: GPUBuffer;
  beta?: GPUBuffer;
  G?: GPUBuffer;
  A: GPUBuffer;
  W?: GPUBuffer;
  U?: GPUBuffer;
  state: GPUBuffer;
  o: GPUBuffer;
  params: GPUBuffer;
  /** split W / U: A = (I + L)^{-1}, strictly lower, [P,H,C] */
  Ainv?: GPUBuffer;
  /** split output: V' [P,H,dv] (delta rules) and the state at every chunk start [slots,H,dk,dv] */
  Vn?: GPUBuffer;
  Hc?: GPUBuffer;
}

// Declaration order is the binding order; `b` is null when only the WGSL text is wanted.
function prepareBindings(f: ChunkForm, b: ChunkBuffers | null, wuSplit: boolean): Binding[] {
  const x = (buf: GPUBuffer | undefined) => buf as GPUBuffer;
  const list: Binding[] = [
    { name: 'cu', kind: 'read', type: 'array<u32>', buffer: x(b?.cu) },
    { name: 'q_in', kind: 'read', buffer: x(b?.q) },
    { name: 'k_in', kind: 'read', buffer: x(b?.k) },
  ];
  // split W / U: v is read by the wu kernel only
  if (f.delta && !wuSplit) list.push({ name: 'v_in', kind: 'read', buffer: x(b?.v) });
  if (f.delta) list.push({ name: 'beta_in', kind: 'read', buffer: x(b?.beta) });
  if (f.decay !== 'none') list.push({ name: 'g_in', kind: 'read', buffer: x(b?.g) }, { name: 'G_out', kind: 'read_write', buffer: x(b?.G) });
  list.push({ name: 'A_out', kind: 'read_write', buffer: x(b?.A) });
  if (wuSplit) list.push({ name: 'Ainv_out', kind: 'read_write', buffer: x(b?.Ainv) });
  else if (f.delta) list.push({ name: 'W_out', kind: 'read_write', buffer: x(b?.W) }, { name: 'U_out', kind: 'read_write', buffer: x(b?.U) });
  list.push({ name: 'params', kind: 'uniform', type: 'Params', buffer: x(b?.params) });
  return list;
}

// The wu kernel's bindings (split W / U, delta rules).
function wuBindings(f: ChunkForm, b: ChunkBuffers | null): Binding[] {
  const x = (buf: GPUBuffer | undefined) => buf as GPUBuffer;
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

// v4: the [.., dk] arrays (q, k, W, per-channel G) bound as vec4 (dk a multiple of 4);
// io4: U (or V) and O as vec4 (dv a multiple of 4); a4: Aqk as vec4 (C a multiple of 4)
function scanBindings(f: ChunkForm, b: ChunkBuffers | null, v4: boolean, io4: boolean, a4: boolean, split = false): Binding[] {
  const x = (buf: GPUBuffer | undefined) => buf as GPUBuffer;
  const t4 = v4 ? 'array<vec4<f32>>' : undefined;
  const vec = (on: boolean) => (on ? 'array<vec4<f32>>' : undefined);
  const list: Binding[] = [{ name: 'cu', kind: 'read', type: 'array<u32>', buffer: x(b?.cu) }];
  if (!split) list.push({ name: 'q_in', kind: 'read', type: t4, buffer: x(b?.q) });
  list.push(
    { name: 'k_in', kind: 'read', type: t4, buffer: x(b?.k) },
    { name: 'u_in', kind: 'read', type: vec(io4), buffer: x(f.delta ? b?.U : b?.v) },
  );
  if (f.decay !== 'none') list.push({ name: 'G_in', kind: 'read', type: f.decay === 'channel' ? t4 : undefined, buffer: x(b?.G) });
  if (!split) list.push({ name: 'A_in', kind: 'read', type: vec(a4), buffer: x(b?.A) });
  if (f.delta) list.push({ name: 'W_in', kind: 'read', type: t4, buffer: x(b?.W) });
  list.push({ name: 'state', kind: 'read_write', buffer: x(b?.state) });
  if (split) {
    if (f.delta) list.push({ name: 'vn_out', kind: 'read_write', type: vec(io4), buffer: x(b?.Vn) });
    list.push({ name: 'hc_out', kind: 'read_write', type: vec(io4), buffer: x(b?.Hc) });
  } else {
    list.push({ name: 'o_out', kind: 'read_write', type: vec(io4), buffer: x(b?.o) });
  }
  list.push({ name: 'params', kind: 'uniform', type: 'Params', buffer: x(b?.params) });
  return list;
}

/**
 * How `scan` reads and writes: one f32 per access (round 3); q, k, W as vec4 where dk is a multiple
 * of 4 (round 5, 'vec4-keys'); and also U, O (dv a multiple of 4) and Aqk (C a multiple of 4) as
 * vec4 (round 6, 'vec4').
 */
export type ScanLoads = 'scalar' | 'vec4-keys' | 'vec4';

/** Which dispatches to record: all (a forward: 'both' for history's sake), or one of them (the benchmark times each). */
export type ChunkPasses = 'both' | 'prepare' | 'wu' | 'scan' | 'output';

export interface ChunkOptions {
  /** the scan's workgroup order when the dispatch has shared segments (default 'shared-first' below LONG_CHAINS tokens per segment; scanKernelWgsl's `ordered`) */
  scanOrder?: 'shared-first' | 'segment';
  /**
   * the most state columns per scan workgroup (a multiple of 4; default defaultScanColumns):
   * fewer columns give more workgroups (and fewer threads each) on the same chain of chunks
   */
  scanColumns?: number;
  /** where W / U are computed (default 'split': the `wu` kernel; 'fused': inside `prepare`, rounds 4-10) */
  wu?: ChunkWu;
  /** how `prepare` inverts I + L (default 'blocked'; 'rows' is the round-3 kernel, for the benchmark) */
  inverse?: ChunkInverse;
  /** how `scan` reads and writes (default 'vec4'; 'vec4-keys' and 'scalar' are the round-5 and round-3 kernels, for the benchmark) */
  scanLoads?: ScanLoads;
  /** `prepare` loads its Gram and W / U tiles one tile ahead into registers (default true; false is round 7's kernel, for the benchmark) */
  prefetch?: PreparePrefetch;
  /** benchmark only: stop `prepare` / `scan` after a part, to time the parts (outputs then wrong) */
  prepareCut?: PrepareCut;
  scanCut?: ScanCut;
  /**
   * where O is computed: 'split' (default) — the scan writes V' and the state at every chunk start
   * and the `output` kernel computes O over all chunks at once; 'fused' — inside the scan (rounds
   * 2-7). 'split' falls back to 'fused' when the per-chunk states exceed one storage binding.
   */
  output?: 'split' | 'fused';
  /**
   * scan: four key quads per dot step and 16 tokens per update group, twice the loads in flight
   * (default true; H200 run 18, scan alone: 4.64 / 13.3 / 1.50 ms against 5.27 / 14.0 / 1.73 with two
   * quads and 8 tokens, for standard / long / small heads)
   */
  scanWide?: boolean;
}

/**
 * Measured on the H200 (docs/perf.md, run 8, gated-delta, the scan alone, ms, 32 / 16 / 8
 * columns): dk = 128: standard 15.0 / 14.2 / 21.2, long 50.5 / 42.0 / 50.4; dk = 64 (small
 * heads) 4.12 / 4.33 / 6.01. 16 columns from dk = 128 (two workgroups where there was one, each
 * of 128 threads), 32 below. With the split output and wide steps (run 19: 32 / 16 / 8 columns)
 * standard 6.00 / 4.69 / 5.52, long 19.1 / 13.4 / 12.2: where the chains (segment x head) are few,
 * as at long (5 x 8 = 40 chains; standard has 160), 8 columns give the sequential chains more
 * workgroups to hide their latency, so 8 below 64 chains at dk >= 128.
 */
// At dk = 64 (small heads), with the shared segments first: 16 columns 1.09 / 1.10 ms against 32
// columns 1.28 / 1.28 (H200 runs 34 / 35, scan alone; 8 columns 1.14 / 1.14).
export const defaultScanColumns = (dk: number, chains = Infinity): number => (dk >= 128 ? (chains < 64 ? 8 : 16) : dk >= 64 ? 16 : 32);

/** `encode` for mode 'chunk': three dispatches (prepare over all chunks, scan over all segments, output over all chunks). */
export function makeChunkEncoder(spec: ChunkRuleSpec, options: ChunkOptions = {}) {
  const fixedColumns = options.scanColumns;
  const inverse = options.inverse ?? 'blocked';
  const scanLoads = options.scanLoads ?? 'vec4';
  const prefetch = options.prefetch ?? 'all';
  const wantSplit = (options.output ?? 'split') === 'split';
  const wuSplit = wuIsSplit(spec.form, inverse, options.wu ?? 'split');
  if (fixedColumns !== undefined && (!Number.isInteger(fixedColumns / 4) || fixedColumns < 4)) {
    throw new GpuError(`rule '${spec.name}': scanColumns must be a positive multiple of 4, got ${fixedColumns}`);
  }
  const { form } = spec;
  const index = (name: string) => {
    const i = spec.inputs.findIndex((d) => d.name === name);
    if (i < 0) throw new GpuError(`rule '${spec.name}': the chunked kernels need an input named '${name}'`);
    return i;
  };
  const ik = index('k');
  const iv = index('v');
  const ig = form.decay !== 'none' ? index('g') : -1;
  const ib = form.delta ? index('beta') : -1;
  const texts = new Map<string, { prepare: string; wu: string; scan: string; output: string }>();

  return (ctx: GpuContext, enc: GPUCommandEncoder, dims: RuleDims, buffers: RuleBuffers, C: number, passes: ChunkPasses = 'both'): void => {
    checkRuleCall(spec.name, spec.inputs, dims, buffers);
    const { segments: S, positions: P, H, dk, dv } = dims;
    const what = `rule '${spec.name}' (chunk ${C}, dk=${dk}, dv=${dv})`;
    const limit = ctx.limits.maxComputeWorkgroupStorageSize;
    const scanColumns = fixedColumns ?? defaultScanColumns(dk, S * H);
    const sl = scanLayout(dk, scanColumns);
    // the scan's text (and bindings) depend on whether dv and C are whole quads
    const dvQuads = dv % 4 === 0;
    const cQuads = C % 4 === 0;
    // Chunk slots (see the header); the split form keeps the state at each one's start.
    const slots = Math.ceil(P / C) + S;
    const split = wantSplit && 4 * slots * H * dk * dv <= ctx.limits.maxStorageBufferBindingSize;
    // both kinds of segment: the scan's shared-segment workgroups first (scanKernelWgsl's `ordered`)
    const sharedCount = dims.sharedSegments ?? 0;
    const blocks = Math.ceil(dv / sl.bj);
    // H200 run 34, scan alone: standard 4.63 -> 3.47 ms, small heads 1.50 -> 1.28, but long (one
    // 65,536-token shared chain, S·H = 40) 11.9 -> 12.9: so by default only below the long regime
    const scanOrder = options.scanOrder ?? (P / S < LONG_CHAINS ? 'shared-first' : 'segment');
    const ordered = scanOrder === 'shared-first' && sharedCount > 0 && sharedCount < S;
    const key = `${dk},${limit},${scanColumns},${dvQuads},${cQuads},${split},${ordered}`;
    let t = texts.get(key);
    if (!t) {
      const pl = prepareLayout(form, limit, wuSplit);
      if (pl.tk < 1) checkWorkgroupBytes(ctx, pl.bytes, what); // throws, naming the limit
      checkWorkgroupBytes(ctx, sl.bytes, what);
      t = {
        prepare: prepareKernelWgsl(form, dk, pl.tk, pl.wb, inverse, prefetch, options.prepareCut, wuSplit ? 'split' : 'fused'),
        wu: wuSplit ? wuKernelWgsl(form, dk) : '',
        scan: scanKernelWgsl(form, dk, scanColumns, scanLoads, dvQuads, cQuads, options.scanCut, split, options.scanWide ?? true, ordered),
        output: split ? outputKernelWgsl(form, dk) : '',
      };
      texts.set(key, t);
    }
    const b: ChunkBuffers = {
      cu: buffers.cu,
      q: buffers.q,
      k: buffers.inputs[ik],
      v: buffers.inputs[iv],
      g: ig >= 0 ? buffers.inputs[ig] : undefined,
      beta: ib >= 0 ? buffers.inputs[ib] : undefined,
      G: form.decay !== 'none' ? cachedScratch(ctx, `chunk-G${form.decay}`, P * H * (form.decay === 'channel' ? dk : 1)) : undefined,
      A: cachedScratch(ctx, 'chunk-Aqk', P * H * C),
      W: form.delta ? cachedScratch(ctx, 'chunk-W', P * H * dk) : undefined,
      U: form.delta ? cachedScratch(ctx, 'chunk-U', P * H * dv) : undefined,
      Ainv: wuSplit ? cachedScratch(ctx, 'chunk-Ainv', P * H * C) : undefined,
      state: buffers.state,
      o: buffers.o,
      params: cachedUniform(ctx, [S, C, H, dv, S - sharedCount, blocks]),
      Vn: split && form.delta ? cachedScratch(ctx, 'chunk-Vn', P * H * dv) : undefined,
      Hc: split ? cachedScratch(ctx, 'chunk-Hc', slots * H * dk * dv) : undefined,
    };
    const pre = prepareBindings(form, b, wuSplit);
    const wu = wuSplit ? wuBindings(form, b) : [];
    const scan = scanBindings(form, b, scanLoads !== 'scalar' && dk % 4 === 0, scanLoads === 'vec4' && dvQuads, scanLoads === 'vec4' && cQuads, split);
    const out = split ? outputBindings(form, b) : [];
    checkStorageBindings(ctx, pre, what);
    checkStorageBindings(ctx, wu, what);
    checkStorageBindings(ctx, scan, what);
    checkStorageBindings(ctx, out, what);

    // Chunk slots on a 2-D grid when one dimension cannot hold them all.
    const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
    const gx = Math.min(slots, maxDim);
    const gy = gridDim(ctx, Math.ceil(slots / gx), `${what} prepare`);
    const folded = ordered ? gridFor(ctx.limits, S * H * blocks, `${what} scan`) : null;
    const grid = folded ? ([folded.x, folded.y, 1] as const) : ([gridDim(ctx, S, what), gridDim(ctx, H, what), gridDim(ctx, blocks, what)] as const);
    if (passes === 'both' || passes === 'prepare') encodePass(ctx, enc, `${spec.name}:chunk-prepare`, ctx.pipeline(`${spec.name}:chunk-prepare`, t.prepare), pre, [gx, gy, gridDim(ctx, H, what)]);
    if (wuSplit && (passes === 'both' || passes === 'wu')) {
      const z = gridDim(ctx, H * Math.ceil(Math.max(dk, dv) / 64), `${what} wu`);
      encodePass(ctx, enc, `${spec.name}:chunk-wu`, ctx.pipeline(`${spec.name}:chunk-wu`, t.wu), wu, [gx, gy, z]);
    }
    if (passes === 'both' || passes === 'scan') encodePass(ctx, enc, `${spec.name}:chunk-scan`, ctx.pipeline(`${spec.name}:chunk-scan`, t.scan), scan, grid);
    if (split && (passes === 'both' || passes === 'output')) {
      const z = gridDim(ctx, H * Math.ceil(dv / 64), `${what} output`);
      encodePass(ctx, enc, `${spec.name}:chunk-output`, ctx.pipeline(`${spec.name}:chunk-output`, t.output), out, [gx, gy, z]);
    }
  };
}
