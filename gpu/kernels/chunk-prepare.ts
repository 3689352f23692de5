/**
 * `prepare`, the per-chunk part of docs/spec.md §5 that needs no state (reference/rules/chunk.ts's
 * G, the masked Q Kᵀ and, for delta rules, A = (I + L)^{-1}). One workgroup of 256 threads per
 * (chunk, head), all chunks of all segments in parallel (chunk slots: chunk-common.ts). Per chunk
 * of n <= C tokens starting at position c0:
 *   G     cumulative log-decay from the chunk start   (scalar [P,H] or per channel [P,H,dk])
 *   Aqk   row t: (q_t·k_s) e^{G_t − G_s} for s <= t   ([P,H,C]; per channel for gla:
 *         Σ_i q_ti k_si e^{G_ti − G_si})
 *   delta rules also: L_ts = β_t (k_t·k_s) e^{G_t − G_s} (s < t), A = (I + L)^{-1} in 16 x 16
 *   blocks in workgroup memory, written to storage ([P,H,C], strictly lower) for `wu`.
 * The Gram matrices are spread over all threads as 4 x 4 register blocks over key tiles loaded one
 * tile ahead; the inverse runs its four diagonal blocks side by side, then the row blocks below.
 */
import { declareBindings, fitCount, type Binding } from './kernel-util.js';
import { bufferOf as x, LOCATE_WGSL, MAX_CHUNK, PARAMS_STRUCT, type ChunkBuffers, type ChunkForm } from './chunk-common.js';

/**
 * Tiles of `prepare`, sized for the largest chunk against `budget` bytes of workgroup memory:
 * TK keys per Gram tile, plus for delta rules the C x C inverse and the 16 x 48 scratch of its
 * row blocks.
 */
export function prepareLayout(f: ChunkForm, budget: number) {
  const C = MAX_CHUNK;
  const perTk = (4 * C + 16) * (f.decay === 'channel' ? 3 : 2); // padded rows (GS)
  const fixed = 4 * (2 * C + (f.delta ? C * C + 16 * 48 : 0));
  // At most 8 keys per tile: the Gram loop costs two workgroup loads per FMA whatever the tile,
  // so wider tiles only save barriers, while unrolling them tripled lavapipe's compile time (gla).
  const tk = fitCount(perTk, fixed, budget, 8);
  return { tk, bytes: fixed + Math.max(1, tk) * perTk };
}

export function prepareKernelWgsl(f: ChunkForm, dk: number, tk: number): string {
  const sc = f.decay === 'scalar';
  const ch = f.decay === 'channel';
  const dl = f.delta;
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
${declareBindings(prepareBindings(f, null))}
// Gram tiles transposed, [key c][token quad]: a thread's four rows (or columns) are one vec4
var<workgroup> tq: array<vec4<f32>, ${(CM / 4 + 1) * tk}>;
var<workgroup> tk_: array<vec4<f32>, ${(CM / 4 + 1) * tk}>;
${ch ? `var<workgroup> tg: array<vec4<f32>, ${(CM / 4 + 1) * tk}>;` : ''}
var<workgroup> gs: array<f32, ${CM}>;
var<workgroup> bs: array<f32, ${CM}>;
${dl ? `// L, then A = (I + L)^{-1}, row-major [CM][CM], as vec4 so that the inverse reads four entries of a row in one load
var<workgroup> am: array<vec4<f32>, ${(CM * CM) / 4}>;
fn amAt(i: u32) -> f32 { return am[i / 4u][i % 4u]; }
fn amPut(i: u32, v: f32) { am[i / 4u][i % 4u] = v; }` : ''}
${dl ? `var<workgroup> tt: array<vec4<f32>, ${16 * 12}>; // L_{I,<I} A_{<I,<I} of the blocked inverse` : ''}

${LOCATE_WGSL}
// 256 threads: thread t < CM also stands for token t where a per-token job is done (β, G)
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) t: u32) {
  let C = params.C;
  let H = params.H;
  let DV = params.DV;
  let h = wid.z;
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
  // balanced threads beat skipping work, and a row per token-thread in a per-thread array spilled.
  let r0 = (t / 16u) * 4u;
  let s0 = (t % 16u) * 4u;
${rows.map((k) => `  var gq${k} = vec4<f32>(0.0);${dl ? ` var gk${k} = vec4<f32>(0.0);` : ''}`).join('\n')}
${gramPrefetched(ch)}
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
  ${dl ? INVERSE_WGSL : ''}
}
`;
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

/**
 * The four 16 x 16 diagonal blocks of A, one thread per (block, column c), the column in registers
 * a0..a15 with constant indices: starting from e_c, a_r = −Σ_{m<r} L_rm a_m for r > c gives
 * A_rc = −(L_rc + Σ_{c<m<r} L_rm A_mc). Rows of L are read as vec4 (the same four for the block's
 * 16 threads, a broadcast); no store feeds a later load, so nothing waits on workgroup memory but
 * the loads of L. The results replace L below the diagonal after one barrier.
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
 * The row blocks: thread e computes row rr of block row I at columns 4cq..4cq+3, one vec4 of a row
 * of A per step (one column per thread took three times the steps and twice the loads). 16 x 4I
 * tasks, at most 192 of the 256 threads.
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

/**
 * The inverse of a delta chunk, A = (I + L)^{-1}, in blocks (as fla's solve_tril): the four 16 x 16
 * diagonal blocks by forward substitution side by side, then row block I = 1, 2, 3 from the rows
 * above it, A_{I,<I} = −A_II (L_{I,<I} A_{<I,<I}), as two small matmuls over all threads; A's
 * strictly lower part then goes to storage ([P,H,C] like Aqk) for the `wu` kernel. Entries of `am`
 * on and above the diagonal stay 0 (workgroup memory starts zeroed and only s < r is written), so
 * the unit diagonal is implicit and loops may run past it. W and U are not computed here: their
 * rows of a triangle are uneven work, and their tiles would hold workgroup memory through the
 * whole kernel.
 */
const INVERSE_WGSL = /* wgsl */ `
  workgroupBarrier();
${diagonalInRegisters + ROW_BLOCKS_VEC4_WGSL}
  for (var e = t; e < CM * CM; e += NT) {
    let r = e / CM;
    let s = e % CM;
    if (r < n && s < r) { Ainv_out[((p0 + r) * H + h) * C + s] = amAt(e); }
  }`;

// Declaration order is the binding order; `b` is null when only the WGSL text is wanted.
export function prepareBindings(f: ChunkForm, b: ChunkBuffers | null): Binding[] {
  const list: Binding[] = [
    { name: 'cu', kind: 'read', type: 'array<u32>', buffer: x(b?.cu) },
    { name: 'q_in', kind: 'read', buffer: x(b?.q) },
    { name: 'k_in', kind: 'read', buffer: x(b?.k) },
  ];
  if (f.delta) list.push({ name: 'beta_in', kind: 'read', buffer: x(b?.beta) });
  if (f.decay !== 'none') list.push({ name: 'g_in', kind: 'read', buffer: x(b?.g) }, { name: 'G_out', kind: 'read_write', buffer: x(b?.G) });
  list.push({ name: 'A_out', kind: 'read_write', buffer: x(b?.A) });
  if (f.delta) list.push({ name: 'Ainv_out', kind: 'read_write', buffer: x(b?.Ainv) });
  list.push({ name: 'params', kind: 'uniform', type: 'Params', buffer: x(b?.params) });
  return list;
}
