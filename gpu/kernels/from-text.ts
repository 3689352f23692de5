/**
 * docs/spec.md §8 on the GPU side: a rule written as math (src/rule-lang) compiled to a WGSL
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
import { flatIndex, lowerRule, noteOnce, type Elem, type Program, type Step } from '../../reference/rule-lang/lower.js';
import type { GpuContext } from '../device.js';
import { checkRuleCall, checkStorageBindings, checkWorkgroupBytes, declareBindings, encodePass, gridDim, type Binding } from './kernel-util.js';
import type { GpuRule, RuleBuffers, RuleDims, RuleRunOptions } from './types.js';

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

const dimW = (d: Dim) => (d === 1 ? '1u' : d === 'dk' ? 'DK' : 'DV');
const idxW = (i: string) => (i === '0' ? '0u' : i);

function num(v: number): string {
  const s = String(v);
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

function wElem(e: Elem): string {
  switch (e.op) {
    case 'num':
      return num(e.value);
    case 'scalar':
      return e.kind === 'input' ? `in_${e.name}[row]` : e.kind === 'size' ? `f32(${e.name === 'dk' ? 'DK' : 'DV'})` : e.name;
    case 'load': {
      const at = flatIndex(e.shape, idxW(e.i) as never, idxW(e.j) as never, dimW);
      if (e.kind === 'state') return `state[sb + ${at}]`;
      if (e.kind === 'query') return `in_q[row * DK + ${at}]`;
      if (e.kind === 'input') return `in_${e.name}[row * ${dimW(e.shape.r)} + ${at}]`;
      return `${e.name}[${at}]`;
    }
    case 'neg':
      return `(-${wElem(e.a)})`;
    case 'bin':
      return `(${wElem(e.a)} ${e.o} ${wElem(e.b)})`;
    case 'fn':
      return ['sigmoid', 'softplus', 'silu'].includes(e.fn) ? `rl_${e.fn}(${wElem(e.a)})` : `${e.fn}(${wElem(e.a)})`;
    case 'diag':
      return `select(0.0, ${wElem(e.a)}, ${idxW(e.i)} == ${idxW(e.j)})`;
  }
}

/** A loop over the r×c elements of a step, strided across the workgroup. */
function forElements(r: Dim, c: Dim, body: string[]): string[] {
  return [
    `for (var e = lid; e < ${dimW(r)} * ${dimW(c)}; e += WG) {`,
    `  let i = e / ${dimW(c)};`,
    `  let j = e % ${dimW(c)};`,
    ...body.map((l) => `  ${l}`),
    `}`,
  ];
}

function wStep(s: Step, withNote = true): string[] {
  const out = [`// ${s.note}`];
  if (!withNote) out.length = 0;
  switch (s.kind) {
    case 'scalar':
      out.push(`let ${s.name} = ${wElem(s.expr)};`);
      break;
    case 'array':
      out.push(...forElements(s.shape.r, s.shape.c, [`${s.name}[${flatIndex(s.shape, 'i', 'j', dimW)}] = ${wElem(s.expr)};`]), 'workgroupBarrier();');
      break;
    case 'reduce': {
      const term = s.b ? `${wElem(s.a)} * ${wElem(s.b)}` : `${wElem(s.a)} * ${wElem(s.a)}`;
      if (s.shape.r === 1 && s.shape.c === 1) {
        // A scalar reduction: every thread sums it (same value everywhere, no barrier needed).
        out.push(`var ${s.name} = 0.0;`, `{ let i = 0u; let j = 0u; for (var l = 0u; l < ${dimW(s.inner)}; l++) { ${s.name} += ${term}; } }`);
      } else {
        out.push(
          ...forElements(s.shape.r, s.shape.c, [`var acc = 0.0;`, `for (var l = 0u; l < ${dimW(s.inner)}; l++) { acc += ${term}; }`, `${s.name}[${flatIndex(s.shape, 'i', 'j', dimW)}] = acc;`]),
          'workgroupBarrier();',
        );
      }
      break;
    }
    case 'state':
      // In place: the expression reads S only at [i][j], the element this thread writes.
      out.push(...forElements('dk', 'dv', [`state[sb + i * DV + j] = ${wElem(s.expr)};`]), 'storageBarrier();');
      break;
    case 'output':
      out.push(`for (var i = lid; i < DV; i += WG) {`, `  let j = 0u;`, `  out_o[row * DV + i] = ${wElem(s.expr)};`, `}`);
      break;
  }
  return out;
}

const indent = (lines: string[], n: number) => lines.map((l) => ' '.repeat(n) + l).join('\n');

/** The bindings in declaration order (only used inputs: 'auto' layouts drop unused ones). */
function bindings(rule: CheckedRule, prog: Program, withHistory: boolean, buffers: RuleBuffers | null): Binding[] {
  const b = (x: GPUBuffer | undefined) => x as GPUBuffer; // text-only callers pass no buffers
  const list: Binding[] = [{ name: 'cu', kind: 'read', type: 'array<u32>', buffer: b(buffers?.cu) }];
  if (prog.usesQuery) list.push({ name: 'in_q', kind: 'read', buffer: b(buffers?.q) });
  rule.inputs.forEach((d, i) => {
    if (prog.usedInputs.has(d.name)) list.push({ name: `in_${d.name}`, kind: 'read', buffer: b(buffers?.inputs[i]) });
  });
  list.push({ name: 'state', kind: 'read_write', buffer: b(buffers?.state) }, { name: 'out_o', kind: 'read_write', buffer: b(buffers?.o) });
  if (withHistory) list.push({ name: 'history', kind: 'read_write', buffer: b(buffers?.history) });
  return list;
}

const size = (d: Dim, p: TextKernelParams) => (d === 1 ? 1 : p[d]);
function workgroupBytes(prog: Program, p: TextKernelParams): number {
  return prog.temps.reduce((a, t) => a + 4 * size(t.shape.r, p) * size(t.shape.c, p), 0);
}

/** The WGSL of a text rule's token-by-token kernel for one set of sizes. */
export function textRuleWgsl(rule: CheckedRule, prog: Program, p: TextKernelParams): string {
  const temps = prog.temps.map((t) => `var<workgroup> ${t.name}: array<f32, ${size(t.shape.r, p) * size(t.shape.c, p)}>;`);
  const source = rule.src.lines.map((l) => `//   ${l}`).join('\n');
  const history = p.withHistory
    ? indent([`// the state after this token, for mixing before the read-out`, `for (var e = lid; e < DK * DV; e += WG) { history[row * DK * DV + e] = state[sb + e]; }`], 4)
    : '';
  return /* wgsl */ `// momlab: rule '${rule.name}' compiled from ${rule.src.file}:
${source}
// One workgroup per (segment, head); each step is a loop over its elements across the threads.
const DK: u32 = ${p.dk}u;
const DV: u32 = ${p.dv}u;
const H: u32 = ${p.H}u;
const WG: u32 = ${WG}u;
${declareBindings(bindings(rule, prog, p.withHistory, null))}
${temps.join('\n')}

fn rl_sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn rl_softplus(x: f32) -> f32 { return max(x, 0.0) + log(1.0 + exp(-abs(x))); }
fn rl_silu(x: f32) -> f32 { return x / (1.0 + exp(-x)); }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let seg = wid.x;
  let h = wid.y;
  let sb = (seg * H + h) * DK * DV; // this (segment, head)'s state
  let p0 = cu[seg];
  let p1 = cu[seg + 1u];
  for (var p = p0; p < p1; p++) {
    let row = p * H + h; // position p, head h in the [P, H, ...] buffers
    // ── update ──
${indent(noteOnce(prog.update, wStep), 4)}
    // ── read-out (sees the updated state) ──
${indent(noteOnce(prog.read, wStep), 4)}
${history}
    workgroupBarrier(); // the next token may overwrite temporaries this one read
  }
}
`;
}

/** Compile a checked rule to a GpuRule (mode 'recurrent' only). */
export function gpuRuleFromChecked(rule: CheckedRule, opts: TextGpuRuleOptions = {}): TextGpuRule {
  const prog = lowerRule(rule);
  const texts = new Map<string, string>();
  const wgsl = (p: TextKernelParams) => {
    const key = `${p.H},${p.dk},${p.dv},${p.withHistory}`;
    let code = texts.get(key);
    if (code === undefined) {
      code = textRuleWgsl(rule, prog, p);
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
      const list = bindings(rule, prog, p.withHistory, buffers);
      checkStorageBindings(ctx, list, label);
      const pipeline = ctx.pipeline(label, wgsl(p));
      encodePass(ctx, enc, label, pipeline, list, [gridDim(ctx, dims.segments, label), gridDim(ctx, dims.H, label), 1]);
    },
  };
}

/** Parse, check and compile a rule text for the GPU. Throws RuleError quoting the offending text. */
export function gpuRuleFromText(text: string, opts: { name?: string; file?: string } & TextGpuRuleOptions = {}): TextGpuRule {
  return gpuRuleFromChecked(checkRuleText(text, opts), opts);
}
