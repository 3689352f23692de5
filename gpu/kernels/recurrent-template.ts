/**
 * The generic token-by-token ('recurrent') kernel over the varlen contract of
 * gpu/kernels/types.ts. The five built-in rules use it with hand-written snippets; rules written
 * as math (gpu/kernels/from-text.ts) use it with snippets compiled from their text.
 *
 * Parallel layout: one workgroup per (segment, head, block of BJ state columns); thread j owns
 * column j of the state, S[:, j], as a private array of dk floats for the whole segment, and
 * walks the segment's tokens in time order. The token's inputs are loaded cooperatively into
 * workgroup memory, TT tokens at a time (one pair of barriers per tile, not per token).
 *
 * Supported class of rules: COLUMN-SEPARABLE updates and read-outs. The new column S'[:, j] may
 * depend on the old column S[:, j] (all dk rows of it), on any of the token's inputs (whole
 * vectors) and on j, but on no other column of S; the read-out o[j] likewise on S'[:, j], q and
 * the inputs. That covers everything whose state transition acts on the key side (left
 * multiplication by a dk x dk matrix built from the inputs) plus any k-side outer product:
 * linear, decay, gla, delta, gated-delta, RWKV-7's diag(w) S + a (bᵀS) + k vᵀ, longhorn, ...
 * It excludes updates that mix columns (S M with a dv x dv matrix M, Frobenius norms of S,
 * S v products). A compiler targeting this template must reject those (RuleError).
 *
 * ── The snippet contract (RecurrentBody) ──────────────────────────────────────────────────
 * `update` and `read` are WGSL statements, pasted in that order into ONE block that runs once
 * per token per live column, after the token's inputs are loaded. They may reference:
 *   s            var array<f32, DK>   column j of the state: s[i] = S[i, j]. `update` changes it
 *                                     in place (to S'[:, j]); `read` sees the updated column.
 *   j            u32                  this thread's column, 0 <= j < DV
 *   DK, DV, H    const u32            head sizes and head count
 *   q(i)         fn(u32) -> f32       the token's query (already scaled), i < DK
 *   <name>(i)    fn(u32) -> f32       an input of width dk (i < DK) or dv (i < DV), e.g. k(i), v(j)
 *   <name>       f32 (a let)          a scalar input, e.g. g, beta
 *   o            var f32 = 0.0        declared between the two snippets: `read` must set it
 *                                     (accumulate into it) to the read-out o[j] = read(S', q)[j]
 * plus WGSL built-in functions. Snippets may declare their own let/var (visible from `update`
 * to `read`); they must not contain barriers, `return`, or identifiers starting with `_`
 * (reserved for the template), and must not write anything but `s`, `o` and their own locals.
 * Input names must be plain identifiers that do not clash with the names above or with WGSL
 * keywords and common built-ins (checked: RuleError).
 *
 * With `withHistory` the kernel also writes the state after each token to `history`
 * [P, H, dk, dv] (the mix-before path).
 */
import { GpuError, RuleError } from '../../reference/errors.js';
import type { InputDecl } from '../../reference/types.js';
import type { GpuContext } from '../device.js';
import {
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

export interface RecurrentBody {
  /** WGSL statements: S[:, j] (the array `s`) <- f(S[:, j]; token inputs). */
  update: string;
  /** WGSL statements: o <- read(S', q)[j]; `o` starts at 0. */
  read: string;
}

export interface RecurrentKernelParams {
  H: number;
  dk: number;
  dv: number;
  inputs: readonly InputDecl[];
  body: RecurrentBody;
  withHistory: boolean;
  /** tokens per tile in workgroup memory (default: as many as fit 16 KiB, at most 32) */
  tokensPerTile?: number;
  /** state columns per workgroup (default min(dv, 32)) */
  columnsPerWorkgroup?: number;
}

/** The read-out of every built-in rule: o[j] = Σ_i S[i, j] q[i]. */
export const READ_STATE_T_Q = 'for (var i = 0u; i < DK; i++) { o += s[i] * q(i); }';

const RESERVED = new Set([
  's', 'j', 'o', 'q', 'DK', 'DV', 'H', 'BJ', 'TT', 'main', 'i', 'cu', 'state', 'history',
  // WGSL keywords and predeclared names a rule might plausibly pick
  'fn', 'let', 'var', 'const', 'if', 'else', 'for', 'loop', 'while', 'return', 'break', 'continue', 'struct',
  'true', 'false', 'switch', 'case', 'default', 'discard', 'enable', 'alias', 'override', 'diagnostic',
  'f32', 'f16', 'i32', 'u32', 'bool', 'vec2', 'vec3', 'vec4', 'mat2x2', 'mat3x3', 'mat4x4', 'array', 'ptr',
  'exp', 'exp2', 'log', 'log2', 'sqrt', 'inverseSqrt', 'pow', 'abs', 'min', 'max', 'clamp', 'select', 'dot',
  'sign', 'floor', 'ceil', 'round', 'fract', 'tanh', 'sin', 'cos', 'tan', 'mix', 'step', 'length', 'normalize',
  'fma', 'sinh', 'cosh', 'atan', 'atan2', 'asin', 'acos', 'trunc', 'saturate', 'smoothstep', 'distance',
]);

function checkInputNames(inputs: readonly InputDecl[]): void {
  const seen = new Set<string>();
  for (const d of inputs) {
    if (!/^[A-Za-z][A-Za-z0-9]*$/.test(d.name)) {
      throw new RuleError(`input name '${d.name}' cannot be used in a GPU kernel: use letters and digits, starting with a letter`);
    }
    if (RESERVED.has(d.name)) throw new RuleError(`input name '${d.name}' clashes with a name the GPU kernel reserves; rename the input`);
    if (seen.has(d.name)) throw new RuleError(`input '${d.name}' is declared twice`);
    seen.add(d.name);
  }
}

const widthConst = (d: InputDecl) => (d.width === 'dk' ? 'DK' : d.width === 'dv' ? 'DV' : '1u');
const widthNum = (d: InputDecl, dk: number, dv: number) => (d.width === 'dk' ? dk : d.width === 'dv' ? dv : 1);

/** Layout decisions shared by the WGSL text and the dispatch. */
function layout(p: Pick<RecurrentKernelParams, 'dk' | 'dv' | 'inputs' | 'tokensPerTile' | 'columnsPerWorkgroup'>, maxWorkgroupBytes = 16384) {
  const bytesPerToken = 4 * (p.dk + p.inputs.reduce((a, d) => a + widthNum(d, p.dk, p.dv), 0));
  // 16 KiB is WebGPU's guaranteed minimum; tiles of up to 32 tokens amortise the barriers.
  const tt = p.tokensPerTile ?? Math.max(1, fitCount(bytesPerToken, 0, Math.min(16384, maxWorkgroupBytes), 32));
  const bj = p.columnsPerWorkgroup ?? Math.min(p.dv, 32);
  return { tt, bj, bytes: tt * bytesPerToken };
}

/** Bindings in declaration order; `buffers` may be null when only the WGSL text is wanted. */
function bindingList(inputs: readonly InputDecl[], withHistory: boolean, buffers: RuleBuffers | null): Binding[] {
  const b = (x: GPUBuffer | undefined) => x as GPUBuffer; // text-only callers pass no buffers
  const list: Binding[] = [
    { name: 'cu', kind: 'read', type: 'array<u32>', buffer: b(buffers?.cu) },
    { name: '_in_q', kind: 'read', buffer: b(buffers?.q) },
    ...inputs.map((d, i): Binding => ({ name: `_in_${d.name}`, kind: 'read', buffer: b(buffers?.inputs[i]) })),
    { name: 'state', kind: 'read_write', buffer: b(buffers?.state) },
    { name: '_out_o', kind: 'read_write', buffer: b(buffers?.o) },
  ];
  if (withHistory) list.push({ name: 'history', kind: 'read_write', buffer: b(buffers?.history) });
  return list;
}

/** The WGSL of the token-by-token kernel (entry point `main`); see the file comment for the contract. */
export function recurrentKernelWgsl(p: RecurrentKernelParams): string {
  checkInputNames(p.inputs);
  const { tt, bj } = layout(p);
  const all = [{ name: 'q', width: 'dk' } as InputDecl, ...p.inputs];
  const tiles = all
    .map((d) => `var<workgroup> _w_${d.name}: array<f32, ${tt * widthNum(d, p.dk, p.dv)}>;`)
    .join('\n');
  const vectorFns = all
    .filter((d) => d.width !== 'scalar')
    .map((d) => `fn ${d.name}(i: u32) -> f32 { return _w_${d.name}[_tt * ${widthConst(d)} + i]; }`)
    .join('\n');
  const loads = all
    .map((d) => {
      const w = widthConst(d);
      return `    for (var _e = _lid; _e < _nt * ${w}; _e += BJ) { _w_${d.name}[_e] = _in_${d.name}[((_t0 + _e / ${w}) * H + _h) * ${w} + _e % ${w}]; }`;
    })
    .join('\n');
  const scalars = p.inputs
    .filter((d) => d.width === 'scalar')
    .map((d) => `      let ${d.name} = _w_${d.name}[_u];`)
    .join('\n');
  const history = p.withHistory
    ? `        for (var i = 0u; i < DK; i++) { history[((_p * H + _h) * DK + i) * DV + j] = s[i]; }`
    : '';
  return /* wgsl */ `
const DK: u32 = ${p.dk}u;
const DV: u32 = ${p.dv}u;
const H: u32 = ${p.H}u;
const BJ: u32 = ${bj}u;
const TT: u32 = ${tt}u;
${declareBindings(bindingList(p.inputs, p.withHistory, null))}
${tiles}
var<private> _tt: u32;
${vectorFns}

@compute @workgroup_size(${bj})
fn main(@builtin(workgroup_id) _wid: vec3u, @builtin(local_invocation_index) _lid: u32) {
  let _seg = _wid.x;
  let _h = _wid.y;
  let _jraw = _wid.z * BJ + _lid;
  let _live = _jraw < DV;
  let j = min(_jraw, DV - 1u);
  let _p0 = cu[_seg];
  let _p1 = cu[_seg + 1u];
  var s: array<f32, ${p.dk}>;
  let _sb = (_seg * H + _h) * DK * DV + j;
  for (var i = 0u; i < DK; i++) { s[i] = state[_sb + i * DV]; }
  for (var _t0 = _p0; _t0 < _p1; _t0 += TT) {
    let _nt = min(TT, _p1 - _t0);
    workgroupBarrier(); // the previous tile is consumed
${loads}
    workgroupBarrier();
    for (var _u = 0u; _u < _nt; _u++) {
      _tt = _u;
      let _p = _t0 + _u;
${scalars}
      if (_live) {
        ${p.body.update}
        var o = 0.0;
        ${p.body.read}
        _out_o[(_p * H + _h) * DV + j] = o;
${history}
      }
    }
  }
  if (_live) {
    for (var i = 0u; i < DK; i++) { state[_sb + i * DV] = s[i]; }
  }
}
`;
}

export interface RecurrentRuleSpec {
  name: string;
  inputs: readonly InputDecl[];
  body: RecurrentBody;
}

/**
 * `encode` for mode 'recurrent': checks the call, compiles (cached per device by WGSL text) and
 * records one dispatch over all (segment, head, column block). Allocates nothing.
 */
export function makeRecurrentEncoder(spec: RecurrentRuleSpec) {
  checkInputNames(spec.inputs);
  const texts = new Map<string, { code: string; tt: number; bj: number; bytes: number }>();
  return (ctx: GpuContext, enc: GPUCommandEncoder, dims: RuleDims, buffers: RuleBuffers): void => {
    checkRuleCall(spec.name, spec.inputs, dims, buffers);
    const { segments, H, dk, dv } = dims;
    const withHistory = buffers.history !== undefined;
    const key = `${H},${dk},${dv},${withHistory}`;
    let t = texts.get(key);
    if (!t) {
      const lay = layout({ dk, dv, inputs: spec.inputs }, ctx.limits.maxComputeWorkgroupStorageSize);
      if (lay.tt < 1) throw new GpuError(`rule '${spec.name}': one token's inputs do not fit in workgroup memory`);
      checkWorkgroupBytes(ctx, lay.bytes, `rule '${spec.name}' (recurrent, dk=${dk}, dv=${dv})`);
      const code = recurrentKernelWgsl({ H, dk, dv, inputs: spec.inputs, body: spec.body, withHistory, tokensPerTile: lay.tt, columnsPerWorkgroup: lay.bj });
      texts.set(key, (t = { code, ...lay }));
    }
    const list = bindingList(spec.inputs, withHistory, buffers);
    checkStorageBindings(ctx, list, `rule '${spec.name}' (recurrent)`);
    const label = `${spec.name}:recurrent`;
    const pipeline = ctx.pipeline(label, t.code);
    const grid = [gridDim(ctx, segments, label), gridDim(ctx, H, label), gridDim(ctx, Math.ceil(dv / t.bj), label)] as const;
    encodePass(ctx, enc, label, pipeline, list, grid);
  };
}
