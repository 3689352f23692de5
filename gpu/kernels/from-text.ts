/**
 * docs/spec.md §8 on the GPU side: a rule written as math (reference/rule-lang) compiled to a WGSL
 * token-by-token kernel, a `GpuRule` in mode 'recurrent' over the varlen contract of
 * gpu/kernels/types.ts. It walks the same lowered program as reference/rules/from-text.ts.
 *
 * Why not recurrent-template.ts: that template gives each thread one state column, which only
 * fits column-separable rules. Text rules may mix columns (S * M, norm(S), k' * S * v), so this
 * kernel is general instead: one workgroup per (segment, head); the state stays in the `state`
 * buffer; each step of the program is a loop over its elements strided across the workgroup's
 * threads, followed by a barrier; scalars are computed by every thread (the same value, so no
 * barrier). Temporaries live in workgroup memory, sized at compile time (dk, dv, H are
 * constants of the kernel, one pipeline per size).
 *
 * `history` (mix-before path) receives the state after each token.
 */
import { ConfigError } from '../../reference/errors.js';
import { checkRuleText, type CheckedRule, type Dim } from '../../reference/rule-lang/check.js';
import { checkGenerated, genId } from '../../reference/rule-lang/emit.js';
import { formatDiagnostic } from '../../reference/rule-lang/source.js';
import { byLine, flatIndex, lowerRule, type Elem, type Idx, type Program, type Step } from '../../reference/rule-lang/lower.js';
import type { GpuContext } from '../device.js';
import { checkRuleCall, checkStorageBindings, checkWorkgroupBytes, declareBindings, encodePass, gridDim, type Binding } from './kernel-util.js';
import type { GpuRule, RuleBuffers, RuleDims, RuleRunOptions } from './types.js';
import { dimW, forElements, hoisted, idxW, num, RULE_FUNCTIONS, statement, type Hoist } from './wgsl-text.js';

/** Threads per workgroup: enough to spread a 16×16 state two elements per thread. */
const WG = 128;

export interface TextKernelParams {
  H: number;
  dk: number;
  dv: number;
  withHistory: boolean;
}

export interface TextGpuRule extends GpuRule {
  readonly checked: CheckedRule;
  /** The kernel's WGSL for these sizes (what `momlab fuzz --emit-wgsl` prints). */
  wgsl(p: TextKernelParams): string;
}

export interface TextGpuRuleOptions {
  /** TEST-ONLY: rewrite the generated WGSL before compiling it (fault injection for the suite's self-test). */
  tamper?: (wgsl: string) => string;
}


/** Every identifier the generated WGSL may use besides generated ones (reference/rule-lang/emit.ts). */
const WGSL_VOCABULARY = new Set(
  [
    'const var let fn return for select workgroupBarrier storageBarrier group binding storage read read_write uniform array f32 u32 vec3u',
    'compute workgroup_size builtin workgroup_id local_invocation_index workgroup main max min exp log tanh sqrt abs rl_sigmoid rl_softplus rl_silu',
    'DK DV H WG wid lid seg h sb p0 p1 p row x y i j e l acc cu in_q state out_o history line update read_out',
  ].flatMap((l) => l.split(' ')),
);


function wElem(e: Elem, h: Hoist): string {
  return wNested(e, h).text;
}

function wNested(e: Elem, h: Hoist): { text: string; depth: number } {
  const sub = (x: Elem) => wNested(x, h);
  let r: { text: string; depth: number };
  switch (e.op) {
    case 'num':
      return { text: num(e.value), depth: 0 };
    case 'scalar':
      return { text: e.kind === 'input' ? `${e.id}[row]` : e.id, depth: 0 };
    case 'size':
      return { text: `f32(${dimW(e.dim)})`, depth: 0 };
    case 'load': {
      const at = flatIndex(e.shape, idxW(e.i) as Idx, idxW(e.j) as Idx, dimW);
      if (e.kind === 'input') return { text: `${e.id}[row * ${dimW(e.shape.r)} + ${at}]`, depth: 1 };
      if (e.kind === 'temp') return { text: `${e.id}[${at}]`, depth: 1 };
      return { text: e.kind === 'state' ? `state[sb + ${at}]` : `in_q[row * DK + ${at}]`, depth: 1 };
    }
    case 'neg': {
      const a = sub(e.a);
      r = { text: `(-${a.text})`, depth: a.depth + 1 };
      break;
    }
    case 'bin': {
      const a = sub(e.a);
      const b = sub(e.b);
      r = { text: `(${a.text} ${e.o} ${b.text})`, depth: Math.max(a.depth, b.depth) + 1 };
      break;
    }
    case 'fn': {
      const a = sub(e.a);
      r = { text: ['sigmoid', 'softplus', 'silu'].includes(e.fn) ? `rl_${e.fn}(${a.text})` : `${e.fn}(${a.text})`, depth: a.depth + 1 };
      break;
    }
    case 'diag': {
      const a = sub(e.a);
      r = { text: `select(0.0, ${a.text}, ${idxW(e.i)} == ${idxW(e.j)})`, depth: a.depth + 1 };
      break;
    }
    case 'max':
    case 'min': {
      const a = sub(e.a);
      const b = sub(e.b);
      r = { text: `${e.op}(${a.text}, ${b.text})`, depth: Math.max(a.depth, b.depth) + 1 };
      break;
    }
  }
  return hoisted(r, h);
}


function wStep(s: Step, h: Hoist): string[] {
  switch (s.kind) {
    case 'scalar':
      return statement(h, () => `let ${s.id} = ${wElem(s.expr, h)};`);
    case 'array':
      return [...forElements(s.shape.r, s.shape.c, statement(h, () => `${s.id}[${flatIndex(s.shape, 'i', 'j', dimW)}] = ${wElem(s.expr, h)};`)), 'workgroupBarrier();'];
    case 'reduce': {
      const sum = (acc: string) => statement(h, () => (s.b ? `${acc} += ${wElem(s.a, h)} * ${wElem(s.b, h)};` : `${acc} += ${wElem(s.a, h)} * ${wElem(s.a, h)};`));
      const loop = (acc: string) => [`for (var l = 0u; l < ${dimW(s.inner)}; l++) {`, ...sum(acc).map((l) => `  ${l}`), `}`];
      if (s.shape.r === 1 && s.shape.c === 1) {
        // A scalar reduction: every thread sums it (same value everywhere, no barrier needed).
        return [`var ${s.id} = 0.0;`, `{`, `  let i = 0u;`, `  let j = 0u;`, ...loop(s.id).map((l) => `  ${l}`), `}`];
      }
      return [...forElements(s.shape.r, s.shape.c, [`var acc = 0.0;`, ...loop('acc'), `${s.id}[${flatIndex(s.shape, 'i', 'j', dimW)}] = acc;`]), 'workgroupBarrier();'];
    }
    case 'state':
      // In place: the expression reads S only at [i][j], the element this thread writes.
      return [...forElements('dk', 'dv', statement(h, () => `state[sb + i * DV + j] = ${wElem(s.expr, h)};`)), 'storageBarrier();'];
    case 'output':
      return [`for (var i = lid; i < DV; i += WG) {`, `  let j = 0u;`, ...statement(h, () => `out_o[row * DV + i] = ${wElem(s.expr, h)};`).map((l) => `  ${l}`), `}`];
  }
}

const indent = (lines: string[], n: number) => lines.map((l) => ' '.repeat(n) + l).join('\n');

/** The bindings in declaration order (only used inputs: 'auto' layouts drop unused ones). */
function bindings(prog: Program, withHistory: boolean, buffers: RuleBuffers | null): Binding[] {
  const b = (x: GPUBuffer | undefined) => x as GPUBuffer; // text-only callers pass no buffers
  const list: Binding[] = [{ name: 'cu', kind: 'read', type: 'array<u32>', buffer: b(buffers?.cu) }];
  if (prog.usesQuery) list.push({ name: 'in_q', kind: 'read', buffer: b(buffers?.q) });
  for (const n of [...prog.usedInputs].sort((x, y) => x - y)) list.push({ name: genId('in', n), kind: 'read', buffer: b(buffers?.inputs[n]) });
  list.push({ name: 'state', kind: 'read_write', buffer: b(buffers?.state) }, { name: 'out_o', kind: 'read_write', buffer: b(buffers?.o) });
  if (withHistory) list.push({ name: 'history', kind: 'read_write', buffer: b(buffers?.history) });
  return list;
}

const size = (d: Dim, p: TextKernelParams) => (d === 1 ? 1 : p[d]);
function workgroupBytes(prog: Program, p: TextKernelParams): number {
  return prog.temps.reduce((a, t) => a + 4 * size(t.shape.r, p) * size(t.shape.c, p), 0);
}

/**
 * The WGSL of a text rule's token-by-token kernel for one set of sizes: one workgroup per
 * (segment, head), each step a loop over its elements across the threads. It cites the rule's
 * lines by number only (`// line 3`); no text of the rule reaches it.
 */
export function textRuleWgsl(prog: Program, p: TextKernelParams): string {
  for (const v of [p.H, p.dk, p.dv]) if (!Number.isSafeInteger(v) || v < 1) throw new Error(`internal error: kernel size ${v}`);
  const temps = prog.temps.map((t) => `var<workgroup> ${t.id}: array<f32, ${size(t.shape.r, p) * size(t.shape.c, p)}>;`);
  const h: Hoist = { lines: [], count: 0 };
  const steps = (list: Step[]) => indent(byLine(list, (s) => wStep(s, h)), 4);
  const history = p.withHistory ? indent([`for (var e = lid; e < DK * DV; e += WG) { history[row * DK * DV + e] = state[sb + e]; }`], 4) : '';
  const code = /* wgsl */ `const DK: u32 = ${p.dk}u;
const DV: u32 = ${p.dv}u;
const H: u32 = ${p.H}u;
const WG: u32 = ${WG}u;
${declareBindings(bindings(prog, p.withHistory, null))}
${temps.join('\n')}

${RULE_FUNCTIONS}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let seg = wid.x;
  let h = wid.y;
  let sb = (seg * H + h) * DK * DV;
  let p0 = cu[seg];
  let p1 = cu[seg + 1u];
  for (var p = p0; p < p1; p++) {
    let row = p * H + h;
    // update
${steps(prog.update)}
    // read_out
${steps(prog.read)}
${history}
    workgroupBarrier();
  }
}
`;
  return checkGenerated(code, WGSL_VOCABULARY, 'WGSL');
}

/** The rule line a line of the kernel's WGSL was generated from (its `// line N` comment), quoted. */
function ruleLineOf(rule: CheckedRule, code: string, wgslLine: number): string | null {
  const before = code.split('\n').slice(0, wgslLine).reverse();
  const n = Number(before.map((l) => /^\s*\/\/ line (\d+)$/.exec(l)?.[1]).find(Boolean));
  if (!n) return null;
  const text = rule.src.lines[n - 1] ?? '';
  return formatDiagnostic(rule.src, { line: n, col: 1, len: Math.max(1, text.length) }, 'the kernel code that fails comes from this rule line');
}

/** Compile a checked rule to a GpuRule (mode 'recurrent' only). */
export function gpuRuleFromChecked(rule: CheckedRule, opts: TextGpuRuleOptions = {}): TextGpuRule {
  const prog = lowerRule(rule);
  const texts = new Map<string, string>();
  const wgsl = (p: TextKernelParams) => {
    const key = `${p.H},${p.dk},${p.dv},${p.withHistory}`;
    let code = texts.get(key);
    if (code === undefined) {
      code = textRuleWgsl(prog, p);
      if (opts.tamper) code = opts.tamper(code);
      texts.set(key, code);
    }
    return code;
  };
  return {
    name: rule.name,
    inputs: rule.inputs,
    readLinear: rule.readLinear,
    modes: ['recurrent'],
    checked: rule,
    wgsl,
    encode(ctx: GpuContext, enc: GPUCommandEncoder, dims: RuleDims, buffers: RuleBuffers, run: RuleRunOptions) {
      if (run.mode !== 'recurrent') throw new ConfigError(`rule '${rule.name}' is written as math and has only a token-by-token kernel (mode 'recurrent'), not mode '${run.mode}'`);
      checkRuleCall(rule.name, rule.inputs, dims, buffers);
      const p = { H: dims.H, dk: dims.dk, dv: dims.dv, withHistory: buffers.history !== undefined };
      const label = `${rule.name}:text-recurrent`;
      checkWorkgroupBytes(ctx, workgroupBytes(prog, p), `rule '${rule.name}' (dk=${p.dk}, dv=${p.dv}) temporaries`);
      const list = bindings(prog, p.withHistory, buffers);
      checkStorageBindings(ctx, list, label);
      const pipeline = ctx.pipeline(label, wgsl(p), 'main', (line) => ruleLineOf(rule, wgsl(p), line));
      encodePass(ctx, enc, label, pipeline, list, [gridDim(ctx, dims.segments, label), gridDim(ctx, dims.H, label), 1]);
    },
  };
}

/** Parse, check and compile a rule text for the GPU. Throws RuleError quoting the offending text. */
export function gpuRuleFromText(text: string, opts: { name?: string; file?: string } & TextGpuRuleOptions = {}): TextGpuRule {
  return gpuRuleFromChecked(checkRuleText(text, opts), opts);
}
