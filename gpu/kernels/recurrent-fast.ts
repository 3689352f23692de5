/**
 * The token-by-token ('recurrent') kernel of the five built-in rules (docs/spec.md §3, §4),
 * written for speed. The generic template (recurrent-template.ts) gives each thread a whole state
 * column of dk floats in a private array (which the driver keeps in slow local memory, not registers) and walks it
 * with two serial dk-long dot products per token; on a long segment that serial chain is the
 * whole run time. Here the built-ins' shared shape is used instead of snippets: every built-in
 * update of column j is
 *
 *     S'[:, j] = a ⊙ S[:, j] + k u_j,     o_j = S'[:, j] · q
 *
 * with a = 1 (none), e^g (scalar) or e^{g_i} (per key channel), and u_j = v_j, or for the delta
 * rules u_j = β (v_j − (a ⊙ S[:, j]) · k) — the ChunkForm of chunk-common.ts. (For scalar decay
 * (a S)·k = a (S·k), which is how both sides compute it.)
 *
 * Parallel layout: one workgroup of NT = 128 threads per (segment, head, block of BV state
 * columns); R threads share a column, each holding DKP / R of its rows in registers as
 * NV4 = DKP / (4R) vec4 variables (the WGSL is generated unrolled, so there is no dynamically
 * indexed array to spill). Thread part r holds the vec4 row groups m R + r (m < NV4), so the R
 * threads of a column read R consecutive vec4 of k and q from workgroup memory, and the columns
 * of a block read the same addresses (broadcast). The two length-dk dot products become NV4
 * vec4 dots per thread plus a reduction over the R threads:
 *  - with the `subgroups` feature: a butterfly of subgroupShuffleXor (log2 R steps, no barrier).
 *    Every thread's role comes from its subgroup lane and a per-subgroup slot taken with an
 *    atomic, so the R threads of a column are always R aligned lanes of one subgroup whatever
 *    order the driver packs invocations in. R <= 4 because WebGPU subgroups have at least 4 lanes.
 *  - otherwise through workgroup memory: partial Sᵀk sums with one barrier per token (delta rules
 *    only; double-buffered by token parity so the next token's writes cannot race this token's
 *    reads); the read-out's partials are stored per token and reduced once per tile.
 * A butterfly and the fixed-order sum both give every thread of a column the same bits, so the R
 * copies of u_j agree and the column stays consistent.
 *
 * Each token's inputs are staged in workgroup memory a tile of TT tokens at a time with
 * coalesced loads (consecutive threads, consecutive addresses); dk is padded with zero rows to a
 * multiple of 4R (zero k, q and state rows stay zero under every update). The next tile is loaded
 * into registers while the current one is computed, and stored at the next tile start, so the
 * loads' latency overlaps the tile's math instead of stalling every thread at the tile start.
 *
 * `history` (the state after each token, mix-before path) is supported: each thread writes its
 * rows of its column.
 *
 * Workgroup order: when the dispatch holds the shared memory's segments (dims.sharedSegments),
 * the workgroups take one linear index with the shared segments' first (`order`), so that their
 * chains, the longest, spread over the multiprocessors.
 * `second` (option `sharedLayout`) runs those segments with other threads per column in the same
 * dispatch: two layouts' code in one kernel, function-scope constants, shared flat tiles.
 *
 * `deferDecay` (scalar decay, no history; with subgroups and R <= 2): the update a S + k uᵀ multiplies
 * every state entry by a, one multiply per entry per token on top of the fma. Instead each thread
 * holds S̃ with S = c S̃ for a scalar c: a token sets c' = a c, S̃ += k (u / c') and reads
 * o = c' (S̃·q); Sᵀk is a c (S̃ᵀk). c is folded back into the registers (S̃ *= c, c = 1) at every
 * tile end, so it is a product of at most TT decays, and before a token whose c' < 2^-32, so
 * u / c' stays finite (a decay that underflows to 0 included). Floating point is scale-invariant
 * away from overflow and underflow, so the rounding is that of the plain update, with one more
 * rounding in u / c'.
 */
import { GpuError } from '../../reference/errors.js';
import type { InputDecl } from '../../reference/types.js';
import type { GpuContext } from '../device.js';
import { gridFor } from '../grid.js';
import type { ChunkForm } from './chunk-common.js';
import {
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

/** Threads per workgroup: at least the largest subgroup WebGPU allows (128), so subgroups are whole. */
const NT = 128;

export interface RecurrentFastParams {
  form: ChunkForm;
  /** workgroup tiles nested [token][thread part][m] instead of flat (see tileType) */
  nested: boolean;
  H: number;
  dk: number;
  dv: number;
  withHistory: boolean;
  /** reduce over the threads of a column with subgroup shuffles (needs the `subgroups` feature) */
  subgroups: boolean;
  /** threads per state column R (power of two; <= 4 with subgroups, <= 128) */
  threadsPerColumn: number;
  /** tokens per tile in workgroup memory */
  tokensPerTile: number;
  /**
   * scalar decay only, without history: hold the state as c·S̃ and multiply the decay into the
   * scalar c instead of every state entry (header comment)
   */
  deferDecay: boolean;
  /**
   * a second layout (its threads per column; no deferred decay) for the segments from ord.first on,
   * in the same dispatch (flat tiles only): the shared memory's longer chains run with more threads
   * per column while the routed memories' run with fewer
   */
  second?: { threadsPerColumn: number };
  /**
   * one layout, workgroups in one linear order with the segments from ord.first on (the shared
   * memory's, the longest chains) first; the two-layout dispatch always orders them so. The counts
   * come from the uniform `ord` (one pipeline for every batch size).
   */
  order?: boolean;
}

/** The smallest power of two >= n. */
const pow2 = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

/** Layout decisions shared by the WGSL text and the dispatch. */
export function fastLayout(form: ChunkForm, dk: number, subgroups: boolean, budget: number, threadsPerColumn: number, nested: boolean) {
  // R is capped by dk itself (no thread without a row)
  const R = Math.max(1, Math.min(threadsPerColumn, pow2(Math.ceil(dk / 4))));
  const bv = NT / R;
  const dkp = Math.ceil(dk / (4 * R)) * 4 * R;
  return tileFit(form, subgroups, budget, { R, bv, dkp, nested });
}

/**
 * Workgroup bytes the token tiles may take: a larger budget (more tokens per tile) fits fewer
 * workgroups per multiprocessor, which made the workgroup-reduction kernel twice as slow.
 */
const TILE_BUDGET = 24576;

/**
 * Tokens per tile and workgroup bytes for tiles of dkp keys and bv values per token (with two
 * layouts in one dispatch, the larger of each).
 */
function tileFit(form: ChunkForm, subgroups: boolean, budget: number, t: { R: number; bv: number; dkp: number; nested: boolean }) {
  const { R, bv, dkp, nested } = t;
  const perToken =
    4 * (2 * dkp + (form.decay === 'channel' ? dkp : form.decay === 'scalar' ? 1 : 0) + (form.delta ? 1 : 0) + bv + (subgroups ? 0 : NT)) +
    // nested tiles: one padding vec4 per thread part in each of the k, q (and gla decay) tiles
    (nested ? 16 * R * (form.decay === 'channel' ? 3 : 2) : 0);
  const fixed = !subgroups && form.delta ? 4 * 2 * NT : 0;
  // Up to 32 tokens per tile amortise the tile's two barriers and load latency, within TILE_BUDGET
  const tt = fitCount(perToken, fixed, Math.min(budget, TILE_BUDGET), 32);
  return { R, bv, dkp, tt, bytes: fixed + Math.max(1, tt) * perToken };
}

/** Average segment length from which the per-token latency of the longest chain dominates. */
const LONG_SEGMENTS = 8192;

/**
 * Reduction path and threads per column when the caller does not fix them (measured on the H200,
 * docs/perf.md): with long segments the run time is the chain's per-token latency, and more
 * threads per column win; with many shorter segments the work spread over more workgroups wins.
 */
export function chooseReduction(dims: RuleDims, hasSubgroups: boolean): { subgroups: boolean; threadsPerColumn: number } {
  if (dims.positions / dims.segments >= LONG_SEGMENTS) return hasSubgroups ? { subgroups: true, threadsPerColumn: 4 } : { subgroups: false, threadsPerColumn: 8 };
  return hasSubgroups ? { subgroups: true, threadsPerColumn: 2 } : { subgroups: false, threadsPerColumn: 4 };
}

/**
 * Two layouts in one dispatch when the shared memory is on (dims.sharedSegments) and the device
 * has subgroups: the shared memory's chains hold every token of a batch, twice the routed
 * memories' on average with k = 2 of E = 4, so they bound the kernel; more threads per column
 * shorten a token's latency there (subgroups R 4 measured fastest on them), while the routed
 * chains keep the layout that does the most work per thread (subgroups R 2).
 */
const MIXED_ROUTED = { subgroups: true, threadsPerColumn: 2 };
const MIXED_SHARED = { threadsPerColumn: 4 };

/**
 * Whether two layouts are the default: at dk > 64 (at dk 64 the kernel holding both layouts' code
 * measured slower, likely the larger layout's registers), and only with segments of 1,024 tokens or
 * more on average (decode steps and short prefill pieces have no long chain to shorten).
 */
function useTwoLayouts(dims: RuleDims): boolean {
  return dims.dk > 64 && dims.positions / dims.segments >= 1024;
}

interface FastBuffers {
  cu: GPUBuffer;
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  g?: GPUBuffer;
  beta?: GPUBuffer;
  state: GPUBuffer;
  o: GPUBuffer;
  history?: GPUBuffer;
  /** the workgroup order's uniform { first shared segment, segments } */
  ord?: GPUBuffer;
}

function bindings(form: ChunkForm, withHistory: boolean, b: FastBuffers | null, ordered = false): Binding[] {
  const x = (buf: GPUBuffer | undefined) => buf as GPUBuffer; // text-only callers pass no buffers
  const list: Binding[] = [
    { name: 'cu', kind: 'read', type: 'array<u32>', buffer: x(b?.cu) },
    { name: 'in_q', kind: 'read', buffer: x(b?.q) },
    { name: 'in_k', kind: 'read', buffer: x(b?.k) },
    { name: 'in_v', kind: 'read', buffer: x(b?.v) },
  ];
  if (form.decay !== 'none') list.push({ name: 'in_g', kind: 'read', buffer: x(b?.g) });
  if (form.delta) list.push({ name: 'in_beta', kind: 'read', buffer: x(b?.beta) });
  list.push({ name: 'state', kind: 'read_write', buffer: x(b?.state) }, { name: 'out_o', kind: 'read_write', buffer: x(b?.o) });
  if (withHistory) list.push({ name: 'history', kind: 'read_write', buffer: x(b?.history) });
  // the workgroup order's counts (uniform, so one pipeline serves every batch size)
  if (ordered) list.push({ name: 'ord', kind: 'uniform', type: 'Order', buffer: x(b?.ord) });
  return list;
}

/** The first shared segment and the segment count, read by ordered dispatches. */
const ORDER_STRUCT = 'struct Order { first: u32, segments: u32 }';

/** Σ over m of f(m), as a balanced tree of `+` (shorter dependency chain than a running sum). */
function tree(terms: string[]): string {
  if (terms.length === 1) return terms[0];
  const h = terms.length >> 1;
  return `(${tree(terms.slice(0, h))} + ${tree(terms.slice(h))})`;
}

/**
 * Register double buffer of a tile's inputs: `fetch(t0, n)` loads tile [t0, t0 + n) into
 * per-thread variables (the same element order as the direct load: consecutive threads,
 * consecutive addresses), `store` writes the fetched tile (of `_nt` tokens) to workgroup memory.
 * Each thread holds ceil(TT·DK/NT) keys and queries, ceil(TT·BV/NT) values and one decay/β.
 */
function prefetchCode(form: ChunkForm, TT: number, dk: number, BV: number, nt: number, tileAt: (arr: string, tok: string, g: string) => string) {
  const ch = form.decay === 'channel';
  const sc = form.decay === 'scalar';
  const lk = Array.from({ length: Math.ceil((TT * dk) / nt) }, (_, i) => i);
  const lv = Array.from({ length: Math.ceil((TT * BV) / nt) }, (_, i) => i);
  const hasScalar = sc || form.delta;
  const declare = [
    ...lk.map((i) => `var _pk${i} = 0.0; var _pq${i} = 0.0;${ch ? ` var _pg${i} = 0.0;` : ''}`),
    ...lv.map((i) => `var _pv${i} = 0.0;`),
    sc ? 'var _pgs = 0.0;' : '',
    form.delta ? 'var _pb = 0.0;' : '',
  ].join(' ');
  const fetch = (t0: string, n: string) =>
    [
      ...lk.map((i) => `{ let _e = _lid + ${i * nt}u; if (_e < ${n} * DK) { let _i = ((${t0} + _e / DK) * H + _h) * DK + _e % DK; _pk${i} = in_k[_i]; _pq${i} = in_q[_i];${ch ? ` _pg${i} = in_g[_i];` : ''} } }`),
      ...lv.map((i) => `{ let _e = _lid + ${i * nt}u; if (_e < ${n} * BV) { _pv${i} = in_v[((${t0} + _e / BV) * H + _h) * DV + min(_j0 + _e % BV, DV - 1u)]; } }`),
      hasScalar ? `if (_lid < ${n}) {${sc ? ` _pgs = in_g[(${t0} + _lid) * H + _h];` : ''}${form.delta ? ` _pb = in_beta[(${t0} + _lid) * H + _h];` : ''} }` : '',
    ].join('\n    ');
  const store = [
    ...lk.map((i) => `    { let _e = _lid + ${i * nt}u; if (_e < _nt * DK) { ${tileAt('_wk', '_e / DK', '(_e % DK) / 4u')}[(_e % DK) % 4u] = _pk${i}; ${tileAt('_wq', '_e / DK', '(_e % DK) / 4u')}[(_e % DK) % 4u] = _pq${i};${ch ? ` ${tileAt('_wa', '_e / DK', '(_e % DK) / 4u')}[(_e % DK) % 4u] = exp(_pg${i});` : ''} } }`),
    ...lv.map((i) => `    { let _e = _lid + ${i * nt}u; if (_e < _nt * BV) { _wv[_e] = _pv${i}; } }`),
    hasScalar ? `    if (_lid < _nt) {${sc ? ' _wa[_lid] = exp(_pgs);' : ''}${form.delta ? ' _wb[_lid] = _pb;' : ''} }` : '',
  ].join('\n');
  return { declare, fetch, store };
}

/** The WGSL of the fast token-by-token kernel (entry point `main`). */
export function recurrentFastWgsl(p: RecurrentFastParams): string {
  const { form, dk, dv, H, withHistory, subgroups } = p;
  const { nested } = p;
  const first = layoutCode(p, p.threadsPerColumn, p.tokensPerTile, nested, p.deferDecay);
  const header = `${subgroups ? 'enable subgroups;\n' : ''}
const DK: u32 = ${dk}u;
const DV: u32 = ${dv}u;
const H: u32 = ${H}u;
const NT: u32 = ${NT}u;`;
  const entry = (more = '') => `@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) _wid: vec3u, @builtin(local_invocation_index) _lid: u32${subgroups ? ', @builtin(subgroup_invocation_id) _sl: u32, @builtin(subgroup_size) _ss: u32' : ''}${more})`;
  const workgroup = (tileType: string, TT: number, BV: number) => `var<workgroup> _wk: ${tileType};
var<workgroup> _wq: ${tileType};
var<workgroup> _wv: array<f32, ${TT * BV}>;
${form.decay === 'channel' ? `var<workgroup> _wa: ${tileType};` : form.decay === 'scalar' ? `var<workgroup> _wa: array<f32, ${TT}>;` : ''}
${form.delta ? `var<workgroup> _wb: array<f32, ${TT}>;` : ''}
${subgroups ? 'var<workgroup> _slot: atomic<u32>;' : `var<workgroup> _op: array<f32, ${TT * NT}>;`}
${!subgroups && form.delta ? `var<workgroup> _kvp: array<f32, ${2 * NT}>;` : ''}`;
  const consts = (L: LayoutCode, indent: string) =>
    [`const R: u32 = ${L.R}u;`, `const BV: u32 = ${L.BV}u;`, `const TT: u32 = ${L.TT}u;`, `const KV4: u32 = ${L.KV4}u;`].map((c) => indent + c).join('\n');
  // (head, column block, lanes) of workgroup w of a group with `blocks` column blocks
  const rest = (blocks: number, w: string) => `(${w} / ${blocks}u) % H, ${w} % ${blocks}u, _lid${subgroups ? ', _sl, _ss' : ''}`;
  if (!p.second) {
    // with p.order, one linear index with the shared segments' workgroups first (as below)
    const o = p.order ?? false;
    const blocks = Math.ceil(dv / first.BV);
    const place = o
      ? `  let _w = _wid.y * _nwg.x + _wid.x; // the dispatch is folded onto two dimensions when large
  if (_w >= ord.segments * H * ${blocks}u) { return; }
  let _ns = (ord.segments - ord.first) * H * ${blocks}u;
  let _v = select(_w - _ns, _w, _w < _ns);
  let _seg = select(_v / (H * ${blocks}u), ord.first + _w / (H * ${blocks}u), _w < _ns);
  let _h = (_v / ${blocks}u) % H;
  let _j0 = (_v % ${blocks}u) * BV;`
      : `  let _seg = _wid.x;
  let _h = _wid.y;
  let _j0 = _wid.z * BV;`;
    return /* wgsl */ `${header}
${consts(first, '')}${o ? `\n${ORDER_STRUCT}` : ''}
${declareBindings(bindings(form, withHistory, null, o))}
${workgroup(first.tileType, first.TT, first.BV)}

${entry(o ? ', @builtin(num_workgroups) _nwg: vec3u' : '')} {
${place}
${first.body}
}
`;
  }
  // Two layouts in one dispatch: segments from ord.first on (the shared memory's) run the second. Both use flat tiles, so the workgroup arrays are shared, sized for the larger.
  if (nested) throw new GpuError('recurrent-fast: two layouts in one dispatch need flat tiles (nested: false)');
  const second = layoutCode(p, p.second.threadsPerColumn, p.tokensPerTile, false, false);
  const KV4 = Math.max(first.KV4, second.KV4);
  const fn = (name: string, L: LayoutCode) => `fn ${name}(_seg: u32, _h: u32, _zb: u32, _lid: u32${subgroups ? ', _sl: u32, _ss: u32' : ''}) {
${consts(L, '  ')}
  let _j0 = _zb * BV;
${L.body}
}`;
  // One linear workgroup index over (shared segments, head, column block) first, then the routed
  // ones: the device hands out workgroups roughly in index order, so the longest chains go out
  // first, spread one per multiprocessor, and the routed workgroups fill in around them.
  const blocks0 = Math.ceil(dv / first.BV);
  const blocks1 = Math.ceil(dv / second.BV);
  return /* wgsl */ `${header}
${ORDER_STRUCT}
${declareBindings(bindings(form, withHistory, null, true))}
${workgroup(`array<vec4f, ${p.tokensPerTile * KV4}>`, p.tokensPerTile, Math.max(first.BV, second.BV))}

${fn('_layout0', first)}

${fn('_layout1', second)}

${entry(', @builtin(num_workgroups) _nwg: vec3u')} {
  let _w = _wid.y * _nwg.x + _wid.x; // the dispatch is folded onto two dimensions when large
  let _ns = (ord.segments - ord.first) * H * ${blocks1}u;
  if (_w < _ns) {
    _layout1(ord.first + _w / (H * ${blocks1}u), ${rest(blocks1, '_w')});
  } else if (_w < _ns + ord.first * H * ${blocks0}u) {
    let _v = _w - _ns;
    _layout0(_v / (H * ${blocks0}u), ${rest(blocks0, '_v')});
  }
}
`;
}

/** Workgroups of an ordered dispatch: the shared segments' (column blocks of bv1) and the routed ones' (bv0). */
function orderedWorkgroups(segments: number, shared: number, H: number, dv: number, bv0: number, bv1: number): number {
  return shared * H * Math.ceil(dv / bv1) + (segments - shared) * H * Math.ceil(dv / bv0);
}

interface LayoutCode {
  R: number;
  BV: number;
  TT: number;
  KV4: number;
  tileType: string;
  /** the statements after _seg, _h and _j0 are known, with R, BV, TT and KV4 as constants */
  body: string;
}

/** The code of one layout (R threads per column, TT tokens per tile) of the kernel. */
function layoutCode(p: RecurrentFastParams, R: number, TT: number, nested: boolean, deferDecay: boolean): LayoutCode {
  const { form, dk, withHistory, subgroups } = p;
  const BV = NT / R;
  const DKP = Math.ceil(dk / (4 * R)) * 4 * R;
  const NV4 = DKP / (4 * R);
  const KV4 = DKP / 4;
  const ms = Array.from({ length: NV4 }, (_, m) => m);
  const ch = form.decay === 'channel';
  const sc = form.decay === 'scalar';

  // row group m of this thread: vec4 index m R + r of a dk vector
  const g4 = (m: number) => `${m * R}u + _r`;
  // A tile of keys / queries (/ per-channel decays) in workgroup memory: flat [token][vec4 row group]
  // or nested [token][thread part r][m] (\`nested\`), where a thread's own group m·R + r is then
  // indexed by constants after [_t][_r], which robustness need not clamp per access.
  // (the inner arrays padded by one vec4: unpadded, the R threads of a column read addresses
  // KV4/R vec4 apart, on the same banks)
  const tileType = nested ? `array<array<array<vec4f, ${KV4 / R + 1}>, ${R}>, ${TT}>` : `array<vec4f, ${TT * KV4}>`;
  const tileAt = (arr: string, tok: string, g: string) => (nested ? `${arr}[${tok}][(${g}) % R][(${g}) / R]` : `${arr}[(${tok}) * KV4 + ${g}]`);
  const mine = (arr: string, m: number) => (nested ? `${arr}[_t][_r][${m}u]` : `${arr}[_kb + ${g4(m)}]`);
  const reduce = (v: string) => {
    if (R === 1) return '';
    const steps: string[] = [];
    for (let mask = 1; mask < R; mask <<= 1) steps.push(`${v} += subgroupShuffleXor(${v}, ${mask}u);`);
    return steps.join(' ');
  };
  const decayed = (m: number) => (ch ? `${mine('_wa', m)} * _s${m}` : sc ? `_a * _s${m}` : `_s${m}`);

  // each of this thread's rows (row < DK only: padding rows are never read or written)
  const eachRow = (f: (m: number, c: number, row: string) => string) =>
    ms
      .flatMap((m) => [0, 1, 2, 3].map((c) => {
        const row = `(${4 * m * R + c}u + 4u * _r)`;
        return `if (${row} < DK) { ${f(m, c, row)} }`;
      }))
      .join('\n    ');
  const loadState = eachRow((m, c, row) => `_s${m}[${c}] = state[_sb + ${row} * DV];`);
  const storeState = eachRow((m, c, row) => `state[_sb + ${row} * DV] = _s${m}[${c}];`);
  const storeHistory = eachRow((m, c, row) => `history[((_p * H + _h) * DK + ${row}) * DV + _j] = _s${m}[${c}];`);

  const kvPartial = tree(ms.map((m) => `dot(${form.decay === 'channel' ? `${mine('_wa', m)} * _s${m}` : `_s${m}`}, ${mine('_wk', m)})`));
  // deferred decay: the registers hold S̃ with S = _cs S̃ (header comment)
  const defer = deferDecay && sc && !withHistory;
  // scalar decay: (a S)·k = a (S·k): the decay multiplies the reduced sum once
  const kvScale = defer ? '_ac * ' : sc ? '_a * ' : '';
  const uDelta = subgroups
    ? `var _kv = ${kvPartial}; ${reduce('_kv')}
      let _u = _wb[_t] * (_vj - ${kvScale}_kv);`
    : `_kvp[(_t & 1u) * NT + _lid] = ${kvPartial};
      workgroupBarrier();
      var _kv = 0.0;
      for (var _x = 0u; _x < R; _x++) { _kv += _kvp[(_t & 1u) * NT + _c * R + _x]; }
      let _u = _wb[_t] * (_vj - ${kvScale}_kv);`;
  const scaleAll = (by: string) => ms.map((m) => `_s${m} *= ${by};`).join(' ');
  // deferred: c' = a c; S̃ += k (u / c'), folded into the registers first when c' < 2^-32 (u / c'
  // stays finite, a = 0 included); the branch is uniform: c' depends on the token only
  const update = defer
    ? `var _cn = _ac;
      if (_cn < 0x1p-32f) { ${scaleAll('_cn')} _cn = 1.0; }
      let _w = vec4f(_u / _cn);
      ${ms.map((m) => `_s${m} = fma(${mine('_wk', m)}, _w, _s${m});`).join('\n      ')}
      _cs = _cn;`
    : ms.map((m) => `_s${m} = fma(${mine('_wk', m)}, vec4f(_u), ${decayed(m)});`).join('\n      ');
  const qsPartial = tree(ms.map((m) => `dot(_s${m}, ${mine('_wq', m)})`));
  const cTimes = defer ? '_cs * ' : '';
  const readOut = subgroups
    ? `var _qs = ${qsPartial}; ${reduce('_qs')}
      if (_live && _r == 0u) { out_o[(_p * H + _h) * DV + _j] = ${cTimes}_qs; }`
    : `_op[_t * NT + _lid] = ${cTimes}${defer ? `(${qsPartial})` : qsPartial};`;
  const historyWrite = withHistory ? `if (_live) {\n    ${storeHistory}\n      }` : '';

  const pf = prefetchCode(form, TT, dk, BV, NT, tileAt);

  const body = `${
  subgroups
    ? `  // this subgroup's first thread slot: the R threads of a column are R aligned lanes of one subgroup
  var _base = 0u;
  if (_sl == 0u) { _base = atomicAdd(&_slot, _ss); }
  let _me = subgroupBroadcast(_base, 0u) + _sl;`
    : '  let _me = _lid;'
}
  let _c = _me / R;
  let _r = _me % R;
  let _live = _j0 + _c < DV;
  let _j = min(_j0 + _c, DV - 1u);
  let _p0 = cu[_seg];
  let _p1 = cu[_seg + 1u];
  let _sb = (_seg * H + _h) * DK * DV + _j;
  ${ms.map((m) => `var _s${m} = vec4f(0.0);`).join(' ')}
  ${loadState}${defer ? '\n  var _cs = 1.0;' : ''}
  ${pf.declare}
  if (_p0 < _p1) { ${pf.fetch('_p0', 'min(TT, _p1 - _p0)')} }
  for (var _t0 = _p0; _t0 < _p1; _t0 += TT) {
    let _nt = min(TT, _p1 - _t0);
    workgroupBarrier(); // the previous tile is consumed
${pf.store}
    workgroupBarrier();
    let _n0 = _t0 + TT;
    if (_n0 < _p1) { ${pf.fetch('_n0', 'min(TT, _p1 - _n0)')} }
    for (var _t = 0u; _t < _nt; _t++) {
      let _p = _t0 + _t;
      let _kb = _t * KV4;
      let _vj = _wv[_t * BV + _c];${sc ? '\n      let _a = _wa[_t];' : ''}${defer ? '\n      let _ac = _a * _cs;' : ''}
      ${form.delta ? uDelta : 'let _u = _vj;'}
      ${update}
      ${readOut}
      ${historyWrite}
    }${defer ? `\n    ${scaleAll('_cs')} _cs = 1.0; // fold once per tile: c is a product of at most TT decays` : ''}
${
  subgroups
    ? ''
    : `    workgroupBarrier(); // the tile's read-out partials are written
    for (var _e = _lid; _e < _nt * BV; _e += NT) {
      let _t = _e / BV;
      let _cc = _e % BV;
      if (_j0 + _cc < DV) {
        var _o = 0.0;
        for (var _x = 0u; _x < R; _x++) { _o += _op[_t * NT + _cc * R + _x]; }
        out_o[((_t0 + _t) * H + _h) * DV + _j0 + _cc] = _o;
      }
    }`
}
  }
  if (_live) {
    ${storeState}
  }`;
  return { R, BV, TT, KV4, tileType, body };
}

export interface RecurrentFastSpec {
  name: string;
  /** must contain k (dk), v (dv), g (when decay != none: scalar or dk) and beta (delta, scalar) */
  inputs: readonly InputDecl[];
  form: ChunkForm;
}

/**
 * The layout is chosen per call from the dims and the device (chooseReduction, useTwoLayouts);
 * these options pin it instead (tests and the benchmark reach every layout the defaults pick at
 * some shape and device).
 */
export interface RecurrentFastOptions {
  /** use subgroup shuffles for the reductions (default: chooseReduction) */
  subgroups?: boolean;
  /** threads per state column (default: chooseReduction) */
  threadsPerColumn?: number;
  /**
   * the shared memory's segments (dims.sharedSegments) in a second layout of the same dispatch:
   * 'same' for one layout, or its threads per column (same reduction path, flat tiles). Default:
   * with subgroups, when neither `subgroups` nor `threadsPerColumn` is given, the dispatch has
   * both kinds of segment and useTwoLayouts holds, routed R 2 and shared R 4 (MIXED_ROUTED,
   * MIXED_SHARED)
   */
  sharedLayout?: 'same' | { threadsPerColumn: number };
}

/**
 * `encode` for mode 'recurrent' of a built-in rule: checks the call, compiles (cached per device
 * by WGSL text) and records one dispatch over all (segment, head, column block). Allocates nothing.
 */
export function makeRecurrentFastEncoder(spec: RecurrentFastSpec, options: RecurrentFastOptions = {}) {
  const { form } = spec;
  const index = (name: string) => {
    const i = spec.inputs.findIndex((d) => d.name === name);
    if (i < 0) throw new GpuError(`rule '${spec.name}': the fast recurrent kernel needs an input named '${name}'`);
    return i;
  };
  const ik = index('k');
  const iv = index('v');
  const ig = form.decay !== 'none' ? index('g') : -1;
  const ib = form.delta ? index('beta') : -1;
  // per WGSL key: the text, the column block of the grid, and for two layouts the linear workgroup count
  const texts = new Map<string, { code: string; bv0: number; bv1: number }>();
  return (ctx: GpuContext, enc: GPUCommandEncoder, dims: RuleDims, buffers: RuleBuffers): void => {
    checkRuleCall(spec.name, spec.inputs, dims, buffers);
    const { segments, H, dk, dv } = dims;
    const withHistory = buffers.history !== undefined;
    // the shared memory's segments in a layout of their own (same dispatch): MIXED_ROUTED,
    // MIXED_SHARED and useTwoLayouts say when and which
    const sharedCount = dims.sharedSegments ?? 0;
    const twoKinds = sharedCount > 0 && sharedCount < segments;
    const mixedAuto =
      ctx.features.has('subgroups') && options.subgroups === undefined && options.threadsPerColumn === undefined && options.sharedLayout === undefined && twoKinds && useTwoLayouts(dims);
    const auto = mixedAuto ? MIXED_ROUTED : chooseReduction(dims, ctx.features.has('subgroups'));
    const subgroups = options.subgroups ?? auto.subgroups;
    const R = options.threadsPerColumn ?? (options.subgroups === undefined ? auto.threadsPerColumn : subgroups ? 2 : 4);
    if (subgroups && !ctx.features.has('subgroups')) throw new GpuError(`rule '${spec.name}': subgroups were asked for but the device does not offer them`);
    if (!Number.isInteger(Math.log2(R)) || R > NT || (subgroups && R > 4)) {
      throw new GpuError(`rule '${spec.name}': ${R} threads per column is not supported (a power of two, at most 4 with subgroups, at most ${NT})`);
    }
    const what = `rule '${spec.name}' (recurrent, dk=${dk}, dv=${dv})`;
    // Nested tiles and deferred decay where they measured faster: subgroups with R <= 2 (with R 4
    // and the workgroup reduction both were slower)
    const nested = subgroups && R <= 2;
    const deferDecay = subgroups && R <= 2;
    const sharedLayout = options.sharedLayout ?? (mixedAuto ? MIXED_SHARED : 'same');
    const mixed = sharedLayout !== 'same' && twoKinds;
    const second = mixed ? { threadsPerColumn: Math.max(1, Math.min(sharedLayout.threadsPerColumn, pow2(Math.ceil(dk / 4)))) } : undefined;
    if (second && (!Number.isInteger(Math.log2(second.threadsPerColumn)) || (subgroups && second.threadsPerColumn > 4))) {
      throw new GpuError(`rule '${spec.name}': ${second.threadsPerColumn} threads per column for the shared segments is not supported (a power of two, at most 4 with subgroups)`);
    }
    const nestedTiles = mixed ? false : nested; // two layouts share flat tiles
    // Both kinds of segment: the shared ones' workgroups first, in one linear order (see the header)
    const order = !second && twoKinds;
    const ordered = order || second !== undefined;
    const key = `${H},${dk},${dv},${withHistory},${subgroups},${R},${nestedTiles},${deferDecay},${JSON.stringify(second ?? null)},${order}`;
    let t = texts.get(key);
    if (!t) {
      const budget = ctx.limits.maxComputeWorkgroupStorageSize;
      let lay = fastLayout(form, dk, subgroups, budget, R, nestedTiles);
      const bv0 = lay.bv;
      let bv1 = lay.bv;
      if (second) {
        // the workgroup arrays are shared, sized for the larger keys and values per token of the two
        const lay2 = fastLayout(form, dk, subgroups, budget, second.threadsPerColumn, false);
        bv1 = lay2.bv;
        lay = { ...lay, ...tileFit(form, subgroups, budget, { R: lay.R, bv: Math.max(lay.bv, lay2.bv), dkp: Math.max(lay.dkp, lay2.dkp), nested: false }) };
      }
      if (lay.tt < 1) checkWorkgroupBytes(ctx, lay.bytes, what); // throws, naming the limit
      checkWorkgroupBytes(ctx, lay.bytes, what);
      const code = recurrentFastWgsl({ form, H, dk, dv, withHistory, subgroups, threadsPerColumn: lay.R, tokensPerTile: lay.tt, nested: nestedTiles, deferDecay, second, order });
      texts.set(key, (t = { code, bv0, bv1 }));
    }
    const list = bindings(form, withHistory, {
      cu: buffers.cu,
      q: buffers.q,
      k: buffers.inputs[ik],
      v: buffers.inputs[iv],
      g: ig >= 0 ? buffers.inputs[ig] : undefined,
      beta: ib >= 0 ? buffers.inputs[ib] : undefined,
      state: buffers.state,
      o: buffers.o,
      history: buffers.history,
      ord: ordered ? cachedUniform(ctx, [segments - sharedCount, segments]) : undefined,
    }, ordered);
    checkStorageBindings(ctx, list, what);
    const label = `${spec.name}:recurrent-fast`;
    // ordered: one linear index over the workgroups of both groups (see recurrentFastWgsl)
    const folded = ordered ? gridFor(ctx.limits, orderedWorkgroups(segments, sharedCount, H, dv, t.bv0, t.bv1), label) : null;
    const grid = folded ? ([folded.x, folded.y, 1] as const) : ([gridDim(ctx, segments, label), gridDim(ctx, H, label), gridDim(ctx, Math.ceil(dv / t.bv0), label)] as const);
    encodePass(ctx, enc, label, ctx.pipeline(label, t.code), list, grid);
  };
}
