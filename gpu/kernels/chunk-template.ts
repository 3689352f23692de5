/**
 * The chunkwise-parallel form (SPEC 5) of the built-in rules over the varlen contract of
 * gpu/kernels/types.ts, in two kernels, one dispatch each over all segments:
 *
 * 1. `prepare`, one workgroup per (chunk, head), all chunks of all segments in parallel. Per
 *    chunk of n <= C tokens starting at position c0:
 *      G     cumulative log-decay from the chunk start   (scalar [P,H] or per channel [P,H,dk])
 *      Aqk   row t: (q_t·k_s) e^{G_t − G_s} for s <= t   ([P,H,C]; per channel for gla:
 *            Σ_i q_ti k_si e^{G_ti − G_si})
 *      delta rules also: L_ts = β_t (k_t·k_s) e^{G_t − G_s} (s < t), A = (I + L)^{-1} by forward
 *      substitution in workgroup memory, W = A((β e^{G}) ⊙ K) [P,H,dk], U = A(β ⊙ V) [P,H,dv].
 * 2. `scan`, one workgroup per (segment, head, block of BJ state columns), sequential over the
 *    segment's chunks; thread j holds the state column h[:, j] in registers:
 *      V' = U − W h          (V' = V for linear/decay/gla)
 *      O  = (Q ⊙ e^{G}) h + Aqk V'
 *      h  ← e^{G_n} h + (K ⊙ e^{G_n − G})ᵀ V'      (G_n: G at the chunk's last token)
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
 * Scratch (G, Aqk, W, U) is sized by P and cached per device (kernel-util.ts), so repeated
 * calls with the same or fewer positions allocate nothing.
 */
import { GpuError } from '../../reference/errors.js';
import type { InputDecl } from '../../reference/types.js';
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

/** Which SPEC 5 form a rule has: its decay (none, one per token, one per key channel) and whether it is a delta rule. */
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
const PARAMS_STRUCT = 'struct Params { S: u32, C: u32, H: u32, DV: u32 }';

/** Key-dimension tile of `prepare` and its workgroup bytes (sized for the largest chunk), the largest that fits `budget`. */
function prepareLayout(f: ChunkForm, budget: number) {
  const C = MAX_CHUNK;
  const fixed = 4 * (2 * C + (f.delta ? C * C : 0));
  const perTk = 4 * C * (f.decay === 'channel' ? 3 : 2);
  // At most 8 keys per tile: the Gram loop costs two workgroup loads per FMA whatever the tile,
  // so wider tiles only save barriers, while unrolling them tripled lavapipe's compile time (gla).
  const tk = fitCount(perTk, fixed, budget, 8);
  return { tk, bytes: fixed + Math.max(1, tk) * perTk };
}

/** Tokens per staged tile of `scan` and its workgroup bytes (at most 16 KiB, to keep occupancy up). */
function scanLayout(dk: number, budget: number) {
  const fixed = 4 * MAX_CHUNK;
  const ts = fitCount(4 * dk, fixed, Math.min(16384, budget), 16);
  // 32 columns per workgroup whatever dv (idle lanes past dv): one pipeline per dk.
  return { ts, bj: 32, bytes: fixed + Math.max(1, ts) * 4 * dk };
}

export function prepareKernelWgsl(f: ChunkForm, dk: number, tk: number): string {
  const sc = f.decay === 'scalar';
  const ch = f.decay === 'channel';
  const dl = f.delta;
  const CM = MAX_CHUNK;
  return /* wgsl */ `
const DK: u32 = ${dk}u;
const CM: u32 = ${CM}u; // workgroup size and array bound: the largest chunk
const TK: u32 = ${tk}u;
${PARAMS_STRUCT}
${declareBindings(prepareBindings(f, null))}
var<workgroup> tq: array<f32, ${CM * tk}>;
var<workgroup> tk_: array<f32, ${CM * tk}>;
${ch ? `var<workgroup> tg: array<f32, ${CM * tk}>;` : ''}
var<workgroup> gs: array<f32, ${CM}>;
var<workgroup> bs: array<f32, ${CM}>;
${dl ? `var<workgroup> am: array<f32, ${CM * CM}>;` : ''}

// (segment, first position, token count) of chunk slot \`slot\`; count 0 when the slot is empty.
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
}

@compute @workgroup_size(${CM})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) t: u32) {
  let C = params.C;
  let H = params.H;
  let DV = params.DV;
  let h = wid.z;
  let loc = locate(wid.y * nwg.x + wid.x);
  let n = loc.z;
  if (n == 0u) { return; }
  let p0 = loc.y;
  let live = t < n;
  let pt = p0 + min(t, n - 1u);

  ${dl ? `bs[t] = select(0.0, beta_in[pt * H + h], live);` : ''}
  ${sc ? `
  // G_t = Σ_{u<=t} g_u: each thread sums its own prefix (C <= 64, cheaper than a scan's barriers).
  gs[t] = select(0.0, g_in[pt * H + h], live);
  workgroupBarrier();
  var acc = 0.0;
  for (var u = 0u; u <= t; u++) { acc += gs[u]; }
  workgroupBarrier();
  gs[t] = acc;
  if (live) { G_out[pt * H + h] = acc; }` : ''}
  ${ch ? `
  // Per key channel: thread t sums channels t, t + CM, ... down the chunk.
  for (var i = t; i < DK; i += CM) {
    var acc = 0.0;
    for (var u = 0u; u < n; u++) {
      let x = ((p0 + u) * H + h) * DK + i;
      acc += g_in[x];
      G_out[x] = acc;
    }
  }
  storageBarrier();` : ''}
  workgroupBarrier();

  // Gram matrices over key tiles: aqk[s] = q_t·k_s (decay-weighted per channel for gla), akk[s] = k_t·k_s.
  var aqk: array<f32, ${CM}>;
  ${dl ? `var akk: array<f32, ${CM}>;` : ''}
  for (var i0 = 0u; i0 < DK; i0 += TK) {
    for (var e = t; e < C * TK; e += CM) {
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
      tq[e] = qv;
      tk_[e] = kv;
      ${ch ? 'tg[e] = gv;' : ''}
    }
    workgroupBarrier();
    if (live) {
      for (var s = 0u; s <= t; s++) {
        var a = 0.0;
        ${dl ? 'var b = 0.0;' : ''}
        for (var c = 0u; c < TK; c++) {
          ${ch ? 'a += tq[t * TK + c] * tk_[s * TK + c] * exp(tg[t * TK + c] - tg[s * TK + c]);' : 'a += tq[t * TK + c] * tk_[s * TK + c];'}
          ${dl ? 'b += tk_[t * TK + c] * tk_[s * TK + c];' : ''}
        }
        aqk[s] += a;
        ${dl ? 'akk[s] += b;' : ''}
      }
    }
    workgroupBarrier();
  }
  if (live) {
    for (var s = 0u; s <= t; s++) {
      A_out[(pt * H + h) * C + s] = aqk[s]${sc ? ' * exp(gs[t] - gs[s])' : ''};
    }
  }
  ${dl ? deltaTail(sc) : ''}
}
`;
}

/** The UT transform of a delta chunk: A = (I + L)^{-1}, W = A((β e^G) ⊙ K), U = A(β ⊙ V). */
function deltaTail(sc: boolean): string {
  const decayT = sc ? ' * exp(gs[t] - gs[s])' : '';
  return /* wgsl */ `
  if (live) {
    for (var s = 0u; s < t; s++) { am[t * CM + s] = bs[t] * akk[s]${decayT}; }
  }
  workgroupBarrier();
  // Forward substitution in place, row r from rows < r (unit diagonal implicit):
  // A_rt = −(L_rt + Σ_{t<m<r} L_rm A_mt). Row r still holds L while it is read.
  for (var r = 1u; r < n; r++) {
    var val = 0.0;
    if (t < r) {
      val = am[r * CM + t];
      for (var m = t + 1u; m < r; m++) { val += am[r * CM + m] * am[m * CM + t]; }
    }
    workgroupBarrier();
    if (t < r) { am[r * CM + t] = -val; }
    workgroupBarrier();
  }
  // W rows over key tiles, then U rows over value tiles: X_u = Y_u + Σ_{s<u} A_us Y_s.
  for (var i0 = 0u; i0 < DK; i0 += TK) {
    for (var e = t; e < C * TK; e += CM) {
      let u = e / TK;
      let c = i0 + e % TK;
      var kv = 0.0;
      if (u < n && c < DK) { kv = k_in[((p0 + u) * H + h) * DK + c] * bs[u]${sc ? ' * exp(gs[u])' : ''}; }
      tk_[e] = kv;
    }
    workgroupBarrier();
    for (var e = t; e < C * TK; e += CM) {
      let u = e / TK;
      let cc = e % TK;
      if (u < n && i0 + cc < DK) {
        var val = tk_[e];
        for (var s = 0u; s < u; s++) { val += am[u * CM + s] * tk_[s * TK + cc]; }
        W_out[((p0 + u) * H + h) * DK + i0 + cc] = val;
      }
    }
    workgroupBarrier();
  }
  for (var j0 = 0u; j0 < DV; j0 += TK) {
    for (var e = t; e < C * TK; e += CM) {
      let u = e / TK;
      let c = j0 + e % TK;
      var vv = 0.0;
      if (u < n && c < DV) { vv = v_in[((p0 + u) * H + h) * DV + c] * bs[u]; }
      tk_[e] = vv;
    }
    workgroupBarrier();
    for (var e = t; e < C * TK; e += CM) {
      let u = e / TK;
      let cc = e % TK;
      if (u < n && j0 + cc < DV) {
        var val = tk_[e];
        for (var s = 0u; s < u; s++) { val += am[u * CM + s] * tk_[s * TK + cc]; }
        U_out[((p0 + u) * H + h) * DV + j0 + cc] = val;
      }
    }
    workgroupBarrier();
  }`;
}

export function scanKernelWgsl(f: ChunkForm, dk: number, ts: number, bj: number): string {
  const sc = f.decay === 'scalar';
  const ch = f.decay === 'channel';
  const qScale = sc ? ' * exp(gs[u])' : ch ? ' * exp(G_in[x])' : '';
  const kScale = sc ? ' * exp(gl - gs[u])' : ch ? ' * exp(G_in[xl + i] - G_in[x])' : '';
  return /* wgsl */ `
const DK: u32 = ${dk}u;
const BJ: u32 = ${bj}u;
const TS: u32 = ${ts}u;
${PARAMS_STRUCT}
${declareBindings(scanBindings(f, null))}
var<workgroup> tile: array<f32, ${ts * dk}>;
var<workgroup> gs: array<f32, ${MAX_CHUNK}>;

@compute @workgroup_size(${bj})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let C = params.C;
  let H = params.H;
  let DV = params.DV;
  let seg = wid.x;
  let h = wid.y;
  let jraw = wid.z * BJ + lid;
  let live = jraw < DV;
  let j = min(jraw, DV - 1u);
  let p0 = cu[seg];
  let p1 = cu[seg + 1u];
  var hs: array<f32, ${dk}>;
  let sb = (seg * H + h) * DK * DV + j;
  for (var i = 0u; i < DK; i++) { hs[i] = state[sb + i * DV]; }
  var vn: array<f32, ${MAX_CHUNK}>;
  for (var c0 = p0; c0 < p1; c0 += C) {
    let n = min(C, p1 - c0);
    ${sc ? `workgroupBarrier();
    for (var u = lid; u < n; u += BJ) { gs[u] = G_in[(c0 + u) * H + h]; }
    workgroupBarrier();
    let gl = gs[n - 1u];` : ''}
    ${ch ? 'let xl = ((c0 + n - 1u) * H + h) * DK;' : ''}

    // V' = U − W h
    for (var u = 0u; u < n; u++) { vn[u] = u_in[((c0 + u) * H + h) * DV + j]; }
    ${f.delta ? `for (var u0 = 0u; u0 < n; u0 += TS) {
      let nt = min(TS, n - u0);
      workgroupBarrier();
      for (var e = lid; e < nt * DK; e += BJ) { tile[e] = W_in[((c0 + u0 + e / DK) * H + h) * DK + e % DK]; }
      workgroupBarrier();
      for (var r = 0u; r < nt; r++) {
        var acc = 0.0;
        for (var i = 0u; i < DK; i++) { acc += tile[r * DK + i] * hs[i]; }
        vn[u0 + r] -= acc;
      }
    }` : ''}

    // O = (Q ⊙ e^G) h + Aqk V'
    for (var u0 = 0u; u0 < n; u0 += TS) {
      let nt = min(TS, n - u0);
      workgroupBarrier();
      for (var e = lid; e < nt * DK; e += BJ) {
        let u = u0 + e / DK;
        let x = ((c0 + u) * H + h) * DK + e % DK;
        tile[e] = q_in[x]${qScale};
      }
      workgroupBarrier();
      for (var r = 0u; r < nt; r++) {
        let u = u0 + r;
        var acc = 0.0;
        for (var i = 0u; i < DK; i++) { acc += tile[r * DK + i] * hs[i]; }
        let arow = ((c0 + u) * H + h) * C;
        for (var s = 0u; s <= u; s++) { acc += A_in[arow + s] * vn[s]; }
        if (live) { o_out[((c0 + u) * H + h) * DV + j] = acc; }
      }
    }

    // h ← e^{G_n} h + (K ⊙ e^{G_n − G})ᵀ V'
    ${sc ? 'let dlast = exp(gl); for (var i = 0u; i < DK; i++) { hs[i] *= dlast; }' : ''}
    ${ch ? 'for (var i = 0u; i < DK; i++) { hs[i] *= exp(G_in[xl + i]); }' : ''}
    for (var u0 = 0u; u0 < n; u0 += TS) {
      let nt = min(TS, n - u0);
      workgroupBarrier();
      for (var e = lid; e < nt * DK; e += BJ) {
        let u = u0 + e / DK;
        let i = e % DK;
        let x = ((c0 + u) * H + h) * DK + i;
        tile[e] = k_in[x]${kScale};
      }
      workgroupBarrier();
      for (var r = 0u; r < nt; r++) {
        let x = vn[u0 + r];
        for (var i = 0u; i < DK; i++) { hs[i] += tile[r * DK + i] * x; }
      }
    }
  }
  if (live) {
    for (var i = 0u; i < DK; i++) { state[sb + i * DV] = hs[i]; }
  }
}
`;
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
}

// Declaration order is the binding order; `b` is null when only the WGSL text is wanted.
function prepareBindings(f: ChunkForm, b: ChunkBuffers | null): Binding[] {
  const x = (buf: GPUBuffer | undefined) => buf as GPUBuffer;
  const list: Binding[] = [
    { name: 'cu', kind: 'read', type: 'array<u32>', buffer: x(b?.cu) },
    { name: 'q_in', kind: 'read', buffer: x(b?.q) },
    { name: 'k_in', kind: 'read', buffer: x(b?.k) },
  ];
  if (f.delta) list.push({ name: 'v_in', kind: 'read', buffer: x(b?.v) }, { name: 'beta_in', kind: 'read', buffer: x(b?.beta) });
  if (f.decay !== 'none') list.push({ name: 'g_in', kind: 'read', buffer: x(b?.g) }, { name: 'G_out', kind: 'read_write', buffer: x(b?.G) });
  list.push({ name: 'A_out', kind: 'read_write', buffer: x(b?.A) });
  if (f.delta) list.push({ name: 'W_out', kind: 'read_write', buffer: x(b?.W) }, { name: 'U_out', kind: 'read_write', buffer: x(b?.U) });
  list.push({ name: 'params', kind: 'uniform', type: 'Params', buffer: x(b?.params) });
  return list;
}

function scanBindings(f: ChunkForm, b: ChunkBuffers | null): Binding[] {
  const x = (buf: GPUBuffer | undefined) => buf as GPUBuffer;
  const list: Binding[] = [
    { name: 'cu', kind: 'read', type: 'array<u32>', buffer: x(b?.cu) },
    { name: 'q_in', kind: 'read', buffer: x(b?.q) },
    { name: 'k_in', kind: 'read', buffer: x(b?.k) },
    { name: 'u_in', kind: 'read', buffer: x(f.delta ? b?.U : b?.v) },
  ];
  if (f.decay !== 'none') list.push({ name: 'G_in', kind: 'read', buffer: x(b?.G) });
  list.push({ name: 'A_in', kind: 'read', buffer: x(b?.A) });
  if (f.delta) list.push({ name: 'W_in', kind: 'read', buffer: x(b?.W) });
  list.push({ name: 'state', kind: 'read_write', buffer: x(b?.state) }, { name: 'o_out', kind: 'read_write', buffer: x(b?.o) });
  list.push({ name: 'params', kind: 'uniform', type: 'Params', buffer: x(b?.params) });
  return list;
}

/** Which of the two dispatches to record: both (a forward), or one of them (the benchmark times each). */
export type ChunkPasses = 'both' | 'prepare' | 'scan';

/** `encode` for mode 'chunk': two dispatches (prepare over all chunks, scan over all segments). */
export function makeChunkEncoder(spec: ChunkRuleSpec) {
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
  const texts = new Map<string, { prepare: string; scan: string }>();

  return (ctx: GpuContext, enc: GPUCommandEncoder, dims: RuleDims, buffers: RuleBuffers, C: number, passes: ChunkPasses = 'both'): void => {
    checkRuleCall(spec.name, spec.inputs, dims, buffers);
    const { segments: S, positions: P, H, dk, dv } = dims;
    const what = `rule '${spec.name}' (chunk ${C}, dk=${dk}, dv=${dv})`;
    const limit = ctx.limits.maxComputeWorkgroupStorageSize;
    const sl = scanLayout(dk, limit);
    const key = `${dk},${sl.bj},${limit}`;
    let t = texts.get(key);
    if (!t) {
      const pl = prepareLayout(form, limit);
      if (pl.tk < 1) checkWorkgroupBytes(ctx, pl.bytes, what); // throws, naming the limit
      if (sl.ts < 1) checkWorkgroupBytes(ctx, sl.bytes, what);
      t = { prepare: prepareKernelWgsl(form, dk, pl.tk), scan: scanKernelWgsl(form, dk, sl.ts, sl.bj) };
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
      state: buffers.state,
      o: buffers.o,
      params: cachedUniform(ctx, [S, C, H, dv]),
    };
    const pre = prepareBindings(form, b);
    const scan = scanBindings(form, b);
    checkStorageBindings(ctx, pre, what);
    checkStorageBindings(ctx, scan, what);

    // Chunk slots on a 2-D grid when one dimension cannot hold them all.
    const slots = Math.ceil(P / C) + S;
    const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
    const gx = Math.min(slots, maxDim);
    const gy = gridDim(ctx, Math.ceil(slots / gx), `${what} prepare`);
    const grid = [gridDim(ctx, S, what), gridDim(ctx, H, what), gridDim(ctx, Math.ceil(dv / sl.bj), what)] as const;
    if (passes !== 'scan') encodePass(ctx, enc, `${spec.name}:chunk-prepare`, ctx.pipeline(`${spec.name}:chunk-prepare`, t.prepare), pre, [gx, gy, gridDim(ctx, H, what)]);
    if (passes !== 'prepare') encodePass(ctx, enc, `${spec.name}:chunk-scan`, ctx.pipeline(`${spec.name}:chunk-scan`, t.scan), scan, grid);
  };
}
