/**
 * Issue 17 §5: the token-by-token backward of a rule written as math, in WGSL, generated from the
 * same lowered program as the forward kernels (gpu/kernels/from-text.ts) through the derivation of
 * reference/rule-lang/grad.ts. The built-ins get theirs from their rules/*.rule texts.
 *
 * Over the varlen contract of gpu/kernels/types.ts, one workgroup per (segment, head):
 *
 *   forward   from the initial state, token by token, storing the state before each token in
 *             `hist` [P, H, dk, dv] (the simplest correct scheme: T·dk·dv floats per head);
 *   reverse   from the last token to the first, with dS (workgroup memory) starting at dfinal:
 *             dS += the read-out's backward at the state after the token (dq of the token too),
 *             then the update's backward from the state before it (recomputing the token's
 *             temporaries), which turns dS into ∂L/∂(state before) and writes the inputs' gradients.
 *
 * The loss is L = Σ do·o + Σ dfinal·final, o the memory's own read-out after each token (the `o`
 * of the forward kernel, q already scaled). Results: `dq` [P, H, dk], `dx` [P, H, W] with every
 * input's gradient packed in `rule.inputs` order (W the sum of their widths), and `dstate`
 * [S, H, dk, dv] (dfinal in, dinitial out).
 *
 * A reverse step adds into its targets (grad.ts's scatters). Here each addition is parallel over the
 * target's own indices (no two threads write one element) and sums the step's other loop indices
 * in a thread; a barrier separates two additions into the same array and ends the step. An
 * addition into a scalar adjoint is summed by every thread (the same value everywhere, as the
 * forward kernel does for scalars). As for every kernel from a
 * rule, only identifiers made by momlab reach the code (checkGenerated).
 */
import { ConfigError } from '../../reference/errors.js';
import type { CheckedRule, Dim, Shape } from '../../reference/rule-lang/check.js';
import { checkGenerated, genId, type GenId } from '../../reference/rule-lang/emit.js';
import { differentiate, type Add, type BackProgram, type DElem, type Scatter } from '../../reference/rule-lang/grad.js';
import { byLine, flatIndex, lowerRule, type Idx, type Step, type Temp } from '../../reference/rule-lang/lower.js';
import { widthOf } from '../../reference/types.js';
import type { GpuContext } from '../device.js';
import { checkStorageBindings, checkWorkgroupBytes, declareBindings, encodePass, gridDim, type Binding } from './kernel-util.js';
import { dimW, forElements, hoisted, idxW, num, RULE_FUNCTIONS, statement, type Hoist } from './wgsl-text.js';

/** Threads per workgroup, as the forward kernel from text. */
const WG = 128;

export interface BackwardKernelParams {
  H: number;
  dk: number;
  dv: number;
}

export interface BackwardBuffers {
  cu: GPUBuffer;
  /** [P, H, dk], scaled */
  q: GPUBuffer;
  /** one per rule input, [P, H, width] */
  inputs: GPUBuffer[];
  /** [S, H, dk, dv] initial states (read only) */
  state: GPUBuffer;
  /** [P, H, dv] upstream gradient of the read-outs */
  do: GPUBuffer;
  /** [S, H, dk, dv] read_write: dfinal in, dinitial out */
  dstate: GPUBuffer;
  /** [P, H, dk], zero on entry */
  dq: GPUBuffer;
  /** [P, H, W], zero on entry */
  dx: GPUBuffer;
  /** [P, H, dk, dv] scratch */
  hist: GPUBuffer;
}

export interface BackwardDims {
  segments: number;
  positions: number;
  H: number;
  dk: number;
  dv: number;
}

const WGSL_VOCABULARY = new Set(
  [
    'const var let fn return for select workgroupBarrier storageBarrier group binding storage read read_write array f32 u32 vec3u',
    'compute workgroup_size builtin workgroup_id local_invocation_index workgroup main max min exp log tanh sqrt abs sign rl_sigmoid rl_softplus rl_silu',
    'DK DV H WG DW wid lid x y seg h sb0 p0 p1 p pp row x i j e l acc cu in_q state d_o dstate dq dx hist line forward reverse',
  ].flatMap((l) => l.split(' ')),
);

const at = (shape: Shape, i: Idx, j: Idx) => flatIndex(shape, idxW(i) as Idx, idxW(j) as Idx, dimW);


/** Where values and gradients live in the kernel. */
interface Layout {
  /** the upstream gradient of the read-out (grad.ts's outputGrad), read from `d_o` */
  outputGrad: GenId | null;
  /** input n's gradient id -> its offset in a row of `dx` */
  inputGradOffset: Map<GenId, number>;
  queryGrad: GenId | null;
}


function wNested(e: DElem, L: Layout, h: Hoist): { text: string; depth: number } {
  const sub = (x: DElem) => wNested(x, L, h);
  let r: { text: string; depth: number };
  switch (e.op) {
    case 'num':
      return { text: num(e.value), depth: 0 };
    case 'scalar':
      return { text: e.kind === 'input' ? `${e.id}[row]` : e.id, depth: 0 };
    case 'size':
      return { text: `f32(${dimW(e.dim)})`, depth: 0 };
    case 'load': {
      const k = at(e.shape, e.i, e.j);
      if (e.kind === 'state') throw new Error('internal error: the backward kernel reads the state from workgroup memory');
      if (e.kind === 'query') return { text: `in_q[row * DK + ${k}]`, depth: 1 };
      const id = (e as { id: GenId }).id;
      if (e.kind === 'input') return { text: `${id}[row * ${dimW(e.shape.r)} + ${k}]`, depth: 1 };
      return { text: id === L.outputGrad ? `d_o[row * DV + ${k}]` : `${id}[${k}]`, depth: 1 };
    }
    case 'neg':
    case 'fn':
    case 'sign':
    case 'diag': {
      const a = sub(e.a);
      const text =
        e.op === 'neg'
          ? `(-${a.text})`
          : e.op === 'sign'
            ? `sign(${a.text})`
            : e.op === 'diag'
              ? `select(0.0, ${a.text}, ${idxW(e.i)} == ${idxW(e.j)})`
              : ['sigmoid', 'softplus', 'silu'].includes(e.fn)
                ? `rl_${e.fn}(${a.text})`
                : `${e.fn}(${a.text})`;
      r = { text, depth: a.depth + 1 };
      break;
    }
    case 'bin':
    case 'max':
    case 'min': {
      const a = sub(e.a);
      const b = sub(e.b);
      r = { text: e.op === 'bin' ? `(${a.text} ${e.o} ${b.text})` : `${e.op}(${a.text}, ${b.text})`, depth: Math.max(a.depth, b.depth) + 1 };
      break;
    }
    case 'ge': {
      const [a, b, t, f] = [e.a, e.b, e.then, e.otherwise].map(sub);
      r = { text: `select(${f.text}, ${t.text}, ${a.text} >= ${b.text})`, depth: Math.max(a.depth, b.depth, t.depth, f.depth) + 1 };
      break;
    }
  }
  return hoisted(r, h);
}

const indent = (lines: string[], n = 2) => lines.map((l) => ' '.repeat(n) + l);

/** A loop over the r×c elements of a shape, strided across the workgroup, then a barrier. */
const forElementsThenBarrier = (r: Dim, c: Dim, body: string[]): string[] => [...forElements(r, c, body), 'workgroupBarrier();'];

/** A forward step recomputed (array steps write workgroup arrays; scalars are per-thread lets). */
function wForward(s: Step, L: Layout, h: Hoist): string[] {
  const w = (e: DElem) => wNested(e, L, h).text;
  switch (s.kind) {
    case 'scalar':
      return statement(h, () => `let ${s.id} = ${w(s.expr)};`);
    case 'array':
      return forElementsThenBarrier(s.shape.r, s.shape.c, statement(h, () => `${s.id}[${at(s.shape, 'i', 'j')}] = ${w(s.expr)};`));
    case 'reduce': {
      const term = () => (s.b ? `${w(s.a)} * ${w(s.b)}` : `${w(s.a)} * ${w(s.a)}`);
      const loop = (acc: string) => [`for (var l = 0u; l < ${dimW(s.inner)}; l++) {`, ...indent(statement(h, () => `${acc} += ${term()};`)), `}`];
      if (s.shape.r === 1 && s.shape.c === 1) return [`var ${s.id} = 0.0;`, `{`, `  let i = 0u;`, `  let j = 0u;`, ...indent(loop(s.id)), `}`];
      return forElementsThenBarrier(s.shape.r, s.shape.c, [`var acc = 0.0;`, ...loop('acc'), `${s.id}[${at(s.shape, 'i', 'j')}] = acc;`]);
    }
    case 'output':
    case 'state':
      throw new Error(`internal error: ${s.kind} step in the recompute`);
  }
}

/** One addition of a reverse step: parallel over the target's indices, the step's other loop indices summed in the thread. */
function wAdd(s: Scatter, a: Add, L: Layout, h: Hoist): string[] {
  const extents: [string, Dim][] = [['i', s.r], ['j', s.c], ...(s.inner === null ? [] : [['l', s.inner] as [string, Dim]])];
  const live = extents.filter(([, d]) => d !== 1);
  const fixed = extents.filter(([, d]) => d === 1).map(([v]) => `let ${v} = 0u;`);
  const own = a.shape === null ? [] : live.filter(([v]) => v === a.i || v === a.j);
  const summed = live.filter((x) => !own.includes(x));
  const term = statement(h, () => `acc += ${wNested(a.coef, L, h).text};`);
  let body = term;
  for (const [v, d] of [...summed].reverse()) body = [`for (var ${v} = 0u; ${v} < ${dimW(d)}; ${v}++) {`, ...indent(body), `}`];
  const sum = [...fixed, `var acc = 0.0;`, ...body];
  if (a.shape === null) return [`{`, ...indent(sum), `  ${a.target} += acc;`, `}`];
  const k = at(a.shape, a.i, a.j);
  const off = L.inputGradOffset.get(a.target);
  const dest = off !== undefined ? `dx[row * DW + ${off}u + ${k}]` : a.target === L.queryGrad ? `dq[row * DK + ${k}]` : `${a.target}[${k}]`;
  const count = own.length === 0 ? '1u' : own.map(([, d]) => dimW(d)).join(' * ');
  const decode = own.length === 2 ? [`let ${own[0][0]} = e / ${dimW(own[1][1])};`, `let ${own[1][0]} = e % ${dimW(own[1][1])};`] : own.length === 1 ? [`let ${own[0][0]} = e;`] : [];
  return [`for (var e = lid; e < ${count}; e += WG) {`, ...indent([...decode, ...sum, `${dest} += acc;`]), `}`];
}

const BARRIER = ['storageBarrier();', 'workgroupBarrier();'];

/**
 * A reverse step's additions. They read the step's own adjoint and forward values, never another
 * addition's target, so only two additions into the same array need a barrier between them.
 */
function wScatter(s: Scatter, L: Layout, h: Hoist): string[] {
  const written = new Set<string>();
  const out: string[] = [];
  for (const a of s.adds) {
    if (a.shape !== null && written.has(a.target)) {
      out.push(...BARRIER);
      written.clear();
    }
    if (a.shape !== null) written.add(a.target);
    out.push(...wAdd(s, a, L, h));
  }
  return [...out, ...BARRIER];
}

/** Zero adjoint arrays, declare scalar adjoints, recompute, then the reverse steps. */
function wBackward(b: BackProgram, L: Layout, h: Hoist): string[] {
  return [
    ...b.zero.flatMap((t) => [`for (var e = lid; e < ${dimW(t.shape.r)} * ${dimW(t.shape.c)}; e += WG) { ${t.id}[e] = 0.0; }`]),
    ...(b.zero.length ? ['workgroupBarrier();'] : []),
    ...b.scalars.map((id) => `var ${id} = 0.0;`),
    ...byLine(b.forward.filter((s) => s.kind !== 'output'), (s) => wForward(s, L, h)),
    ...b.reverse.flatMap((s) => [`// line ${s.line}`, ...wScatter(s, L, h)]),
  ];
}

const copy = (to: string, from: string) => [`for (var e = lid; e < DK * DV; e += WG) { ${to} = ${from}; }`, 'workgroupBarrier();'];

const size = (d: Dim, p: BackwardKernelParams) => (d === 1 ? 1 : p[d]);

/** The backward kernel's program: the update's and the read-out's derivations in one identifier space. */
export function backwardProgram(rule: CheckedRule) {
  const prog = lowerRule(rule);
  const read0 = differentiate(prog, 'read'); // only to learn where fresh identifiers may start
  let n = read0.last;
  const S = genId('t', ++n); // the state the steps read (after the token for the read-out, before it for the update)
  const dS = genId('t', ++n); // ∂L/∂S, carried across tokens
  const update = differentiate(prog, 'update', { state0: S, stateGrad: dS, after: n });
  const read = differentiate(prog, 'read', { state0: S, stateGrad: dS, after: update.last });
  return { prog, S, dS, update, read };
}

/** Every workgroup array of the kernel, each once. */
function workgroupArrays(b: ReturnType<typeof backwardProgram>): Temp[] {
  const all = new Map<string, Temp>();
  for (const t of [{ id: b.S, shape: { r: 'dk', c: 'dv' } }, { id: b.dS, shape: { r: 'dk', c: 'dv' } }, ...b.update.temps, ...b.read.temps] as Temp[]) all.set(t.id, t);
  return [...all.values()];
}

function bindings(b: ReturnType<typeof backwardProgram>, rule: CheckedRule, buffers: BackwardBuffers | null): Binding[] {
  const buf = (x: GPUBuffer | undefined) => x as GPUBuffer; // text-only callers pass no buffers
  const used = new Set([...b.prog.usedInputs]);
  const list: Binding[] = [{ name: 'cu', kind: 'read', type: 'array<u32>', buffer: buf(buffers?.cu) }];
  if (b.prog.usesQuery) list.push({ name: 'in_q', kind: 'read', buffer: buf(buffers?.q) });
  rule.inputs.forEach((_, n) => used.has(n) && list.push({ name: genId('in', n), kind: 'read', buffer: buf(buffers?.inputs[n]) }));
  list.push(
    { name: 'state', kind: 'read', buffer: buf(buffers?.state) },
    { name: 'd_o', kind: 'read', buffer: buf(buffers?.do) },
    { name: 'dstate', kind: 'read_write', buffer: buf(buffers?.dstate) },
  );
  if (b.read.queryGrad) list.push({ name: 'dq', kind: 'read_write', buffer: buf(buffers?.dq) });
  if (b.update.inputGrads.size) list.push({ name: 'dx', kind: 'read_write', buffer: buf(buffers?.dx) });
  list.push({ name: 'hist', kind: 'read_write', buffer: buf(buffers?.hist) });
  return list;
}

/** The WGSL of the backward kernel for one set of sizes. */
export function backwardWgsl(rule: CheckedRule, p: BackwardKernelParams, b = backwardProgram(rule)): string {
  for (const v of [p.H, p.dk, p.dv]) if (!Number.isSafeInteger(v) || v < 1) throw new Error(`internal error: kernel size ${v}`);
  const offsets = rule.inputs.map((_, n) => rule.inputs.slice(0, n).reduce((a, d) => a + widthOf(d.width, p), 0));
  const W = rule.inputs.reduce((a, d) => a + widthOf(d.width, p), 0);
  const L: Layout = {
    outputGrad: b.read.outputGrad,
    queryGrad: b.read.queryGrad,
    inputGradOffset: new Map([...b.update.inputGrads].map(([n, id]) => [id, offsets[n]])),
  };
  const h: Hoist = { lines: [], count: 0 };
  // The recompute's last state version: the state after the token (none when the update never assigns it).
  const after = b.update.versions.at(-1);
  const forwardToken = [
    ...copy('hist[row * DK * DV + e]', `${b.S}[e]`),
    ...byLine(b.update.forward, (s) => wForward(s, L, h)),
    ...(after ? copy(`${b.S}[e]`, `${after}[e]`) : []),
  ];
  const reverseToken = [
    ...wBackward(b.read, L, h),
    ...copy(`${b.S}[e]`, 'hist[row * DK * DV + e]'),
    ...wBackward(b.update, L, h),
    ...(b.update.stateGradIn === b.update.stateGradOut ? [] : copy(`${b.dS}[e]`, `${b.update.stateGradIn}[e]`)),
  ];
  const arrays = workgroupArrays(b).map((t) => `var<workgroup> ${t.id}: array<f32, ${size(t.shape.r, p) * size(t.shape.c, p)}>;`);
  const code = /* wgsl */ `const DK: u32 = ${p.dk}u;
const DV: u32 = ${p.dv}u;
const H: u32 = ${p.H}u;
const DW: u32 = ${W}u;
const WG: u32 = ${WG}u;
${declareBindings(bindings(b, rule, null))}
${arrays.join('\n')}

${RULE_FUNCTIONS}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let seg = wid.x;
  let h = wid.y;
  let sb0 = (seg * H + h) * DK * DV;
  let p0 = cu[seg];
  let p1 = cu[seg + 1u];
${indent([...copy(`${b.S}[e]`, 'state[sb0 + e]'), ...copy(`${b.dS}[e]`, 'dstate[sb0 + e]')]).join('\n')}
  // forward
  for (var p = p0; p < p1; p++) {
    let row = p * H + h;
${indent(forwardToken, 4).join('\n')}
  }
  // reverse
  for (var pp = p1; pp > p0; pp--) {
    let p = pp - 1u;
    let row = p * H + h;
${indent(reverseToken, 4).join('\n')}
  }
${indent(copy('dstate[sb0 + e]', `${b.dS}[e]`)).join('\n')}
}
`;
  return checkGenerated(code, WGSL_VOCABULARY, 'WGSL');
}

export interface GpuRuleBackward {
  readonly name: string;
  readonly inputs: CheckedRule['inputs'];
  wgsl(p: BackwardKernelParams): string;
  /** Record the backward's dispatch into `enc` (buffers as BackwardBuffers says). */
  encode(ctx: GpuContext, enc: GPUCommandEncoder, dims: BackwardDims, buffers: BackwardBuffers): void;
}

/** The backward kernel of a checked rule (one pipeline per size). */
export function gpuBackwardFromChecked(rule: CheckedRule): GpuRuleBackward {
  const b = backwardProgram(rule);
  const texts = new Map<string, string>();
  const wgsl = (p: BackwardKernelParams) => {
    const key = `${p.H},${p.dk},${p.dv}`;
    let code = texts.get(key);
    if (code === undefined) texts.set(key, (code = backwardWgsl(rule, p, b)));
    return code;
  };
  return {
    name: rule.name,
    inputs: rule.inputs,
    wgsl,
    encode(ctx, enc, dims, buffers) {
      if (buffers.inputs.length !== rule.inputs.length) throw new ConfigError(`rule '${rule.name}' backward: ${rule.inputs.length} input buffers expected, got ${buffers.inputs.length}`);
      const p = { H: dims.H, dk: dims.dk, dv: dims.dv };
      const label = `${rule.name}:text-backward`;
      const bytes = workgroupArrays(b).reduce((a, t) => a + 4 * size(t.shape.r, p) * size(t.shape.c, p), 0);
      checkWorkgroupBytes(ctx, bytes, `rule '${rule.name}' backward (dk=${p.dk}, dv=${p.dv}) temporaries`);
      const list = bindings(b, rule, buffers);
      checkStorageBindings(ctx, list, label);
      encodePass(ctx, enc, label, ctx.pipeline(label, wgsl(p), 'main'), list, [gridDim(ctx, dims.segments, label), gridDim(ctx, dims.H, label), 1]);
    },
  };
}
