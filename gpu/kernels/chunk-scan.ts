/**
 * `scan`, the sequential part of docs/spec.md §5 (reference/rules/chunk.ts's loop over chunks):
 * one workgroup per (segment, head, block of BV state columns), walking the segment's chunks in
 * order. The block of h is spread over the threads (4 x 4 each, in registers; see scanLayout).
 * Per chunk of n tokens, phases separated by barriers, each spread over all threads:
 *   A  V' = U − W h         (V' = V for linear/decay/gla) items of 2 tokens x 4 columns, dot
 *                           products over dk against h in workgroup memory; V' to workgroup memory
 *   C  h ← e^{G_n} h + (K ⊙ e^{G_n − G})ᵀ V'     (G_n: G at the chunk's last token) each thread
 *                           its 4 x 4 block, then copied to workgroup memory for the next chunk
 * writing V' and the state h_c at every chunk start to scratch for `output` (chunk-output.ts).
 * Where those chunk-start states do not fit one storage binding, the scan computes the read-out
 * itself instead (the fused form), in a phase between A and C:
 *   B  O  = (Q ⊙ e^G) h + Aqk V'     the same items as A; O straight to storage
 */
import { declareBindings, type Binding } from './kernel-util.js';
import { bufferOf as x, MAX_CHUNK, PARAMS_STRUCT, type ChunkBuffers, type ChunkForm } from './chunk-common.js';

/**
 * Layout of `scan`: a workgroup owns one (segment, head) and BV = 4·CQ state columns, with
 * NT = RQ·CQ threads; thread (rq, cq) keeps the 4 x 4 block of h at rows 4rq.., columns 4cq.. in
 * registers. Up to 256 threads and `maxColumns` columns: dk = 64 gives 16 x 8 (BV = 32), dk = 128
 * 32 x 4 (BV = 16, defaultScanColumns) or 32 x 8 (BV = 32), dk = 256 64 x 4 (BV = 16).
 * Workgroup memory: h [dkp, BV] and V' [C, BV] as vec4 of columns, plus the chunk's G.
 */
export function scanLayout(dk: number, maxColumns: number) {
  const rq = Math.ceil(dk / 4);
  const cq = Math.max(1, Math.min(Math.floor(maxColumns / 4), Math.floor(256 / rq)));
  return { rq, cq, nt: rq * cq, bj: 4 * cq, bytes: 16 * (4 * rq * cq + MAX_CHUNK * cq) + 4 * MAX_CHUNK };
}

/**
 * State columns per scan workgroup (docs/perf.md has the measurements): at dk >= 128, 16, or 8
 * where the chains (segment x head) are fewer than 64, since narrower blocks give a few sequential
 * chains more workgroups to hide their latency; 16 at dk = 64; 32 below.
 */
export const defaultScanColumns = (dk: number, chains: number): number => (dk >= 128 ? (chains < 64 ? 8 : 16) : dk >= 64 ? 16 : 32);

/** Average segment length from which the scan keeps (segment, head, block) order (see chunk-encoder.ts). */
export const LONG_CHAINS = 8192;

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
 * eight of them per step (four quads of two tokens), so one storage load brings four entries
 * where the scalar form issued four loads, and more loads are in flight per step.
 */
function dotOverDk4(acc0: string, acc1: string, a: (x: string, i4: string) => string): string {
  const step = 4;
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

// Phase B's a0 += Σ_{s<=u} Aqk[x0, s] V'_s and a1 += Σ_{s<=u+1} Aqk[x1, s] V'_s, Aqk bound as vec4
// (C is a multiple of 4): a row's four s in one load.
const AQK_TIMES_V = `      let C4 = C / 4u;
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

/**
 * `ordered`: the scan's workgroups in one linear order with the segments from params.FS on (the
 * shared memory's, the longest chains) first, instead of (segment, head, column block): the device
 * hands out workgroups roughly in index order, so the long chains spread over the
 * multiprocessors. The counts are uniforms, so one pipeline serves every batch and head count.
 * `split`: V' and the chunk-start states to scratch for `output` (else the fused read-out).
 */
export function scanKernelWgsl(f: ChunkForm, dk: number, maxColumns: number, dvQuads: boolean, split: boolean, ordered: boolean): string {
  const sc = f.decay === 'scalar';
  const ch = f.decay === 'channel';
  const { rq, cq, nt } = scanLayout(dk, maxColumns);
  const rows = [0, 1, 2, 3];
  // vec4 bindings need whole quads of keys per token
  const v4 = dk % 4 === 0;
  // U / O as vec4 need whole quads of columns (dv % 4 = 0)
  const io4 = dvQuads;
  // Phase C's token group: with vec4 keys a token costs two loads, so more tokens fit in flight
  const group = v4 ? 16 : 4;
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
${declareBindings(scanBindings(f, null, v4, io4, split))}
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
${split ? '' : `fn storeO(x: u32, c4: u32, v: vec4<f32>) {
  if (c4 < params.DV / 4u) { o_out[x * (params.DV / 4u) + c4] = v; }
}`}
${split && f.delta ? `fn storeVn(x: u32, c4: u32, v: vec4<f32>) {
  if (c4 < params.DV / 4u) { vn_out[x * (params.DV / 4u) + c4] = v; }
}` : ''}` : `// Row x, columns 4·c4.. of U / O, one f32 at a time (zero / not written past DV).
fn uQuad(x: u32, c4: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var m = 0u; m < 4u; m++) { if (4u * c4 + m < params.DV) { r[m] = u_in[x * params.DV + 4u * c4 + m]; } }
  return r;
}
${split ? '' : `fn storeO(x: u32, c4: u32, v: vec4<f32>) {
  for (var m = 0u; m < 4u; m++) { if (4u * c4 + m < params.DV) { o_out[x * params.DV + 4u * c4 + m] = v[m]; } }
}`}
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
      ${f.delta ? (v4 ? dotOverDk4('a0 -=', 'a1 -=', (x, i4) => `W_in[${x} * DK4 + ${i4}]`) : dotOverDk('a0 -=', 'a1 -=', (x, i) => `W_in[${x} * DK + ${i}]`)) : ''}
      vsh[u * CQ + q4] = a0;
      if (u + 1u < n) { vsh[(u + 1u) * CQ + q4] = a1; }
      ${split && f.delta ? `storeVn(x0, colBase / 4u + q4, a0);
      if (u + 1u < n) { storeVn(x1, colBase / 4u + q4, a1); }` : ''}
    }
    workgroupBarrier();

${split ? '' : `    // B (the fused read-out): O = (Q ⊙ e^G) h + Aqk V'
    for (var e = lid; e < items; e += NT) {
      let q4 = e % CQ;
      let u = (e / CQ) * 2u;
      let u1 = min(u + 1u, n - 1u);
      let x0 = (c0 + u) * H + h;
      let x1 = (c0 + u1) * H + h;
      var a0 = vec4<f32>(0.0);
      var a1 = vec4<f32>(0.0);
      ${v4 ? dotOverDk4('a0 +=', 'a1 +=', qTerm4) : dotOverDk('a0 +=', 'a1 +=', qTerm)}
      ${sc ? 'a0 *= exp(gs[u]); a1 *= exp(gs[u1]);' : ''}
${AQK_TIMES_V}
      storeO(x0, colBase / 4u + q4, a0);
      if (u + 1u < n) { storeO(x1, colBase / 4u + q4, a1); }
    }

`}
    // C: h ← e^{G_n} h + (K ⊙ e^{G_n − G})ᵀ V', this thread's rows r0..r0+3 and column quad cq
    let xl = (c0 + n - 1u) * H + h;
    ${sc ? `let gl = gs[n - 1u];
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
    workgroupBarrier(); // B has finished reading hsh
${rows.map((k) => `    hsh[(r0 + ${k}u) * CQ + cq] = h${k};`).join('\n')}
  }
${rows.map((k) => `  if (r0 + ${k}u < DK) { for (var m = 0u; m < 4u; m++) { let c = colBase + cq * 4u + m; if (c < DV) { state[sb + (r0 + ${k}u) * DV + c] = h${k}[m]; } } }`).join('\n')}
}
`;
}

// v4: the [.., dk] arrays (q, k, W, per-channel G) bound as vec4 (dk a multiple of 4);
// io4: U (or V) and O as vec4 (dv a multiple of 4); Aqk always as vec4 (C a multiple of 4)
export function scanBindings(f: ChunkForm, b: ChunkBuffers | null, v4: boolean, io4: boolean, split: boolean): Binding[] {
  const t4 = v4 ? 'array<vec4<f32>>' : undefined;
  const vec = (on: boolean) => (on ? 'array<vec4<f32>>' : undefined);
  const list: Binding[] = [{ name: 'cu', kind: 'read', type: 'array<u32>', buffer: x(b?.cu) }];
  if (!split) list.push({ name: 'q_in', kind: 'read', type: t4, buffer: x(b?.q) });
  list.push(
    { name: 'k_in', kind: 'read', type: t4, buffer: x(b?.k) },
    { name: 'u_in', kind: 'read', type: vec(io4), buffer: x(f.delta ? b?.U : b?.v) },
  );
  if (f.decay !== 'none') list.push({ name: 'G_in', kind: 'read', type: f.decay === 'channel' ? t4 : undefined, buffer: x(b?.G) });
  if (!split) list.push({ name: 'A_in', kind: 'read', type: vec(true), buffer: x(b?.A) });
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
