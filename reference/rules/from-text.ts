/**
 * docs/spec.md §8 on the reference side: a rule written as math (reference/rule-lang) becomes a `Rule`.
 *
 * `ruleFromText` compiles the lowered program (reference/rule-lang/lower.ts) to JavaScript: plain
 * loops over Float64Array, one function for the token step and one for the read-out, built
 * with `new Function` (the source is kept on the rule, `jsSource`, for inspection). The code holds
 * only identifiers and numbers made by reference/rule-lang/emit.ts, never text from the rule.
 * `interpretRule` evaluates the same checked syntax tree with mathjs matrices, node by node: it is
 * slow and independent of the lowering and the code generator, which makes it the oracle the
 * tests compare the compiled rule with.
 */
import * as math from 'mathjs';
import type { CheckedRule, Dim, TExpr } from '../rule-lang/check.js';
import { checkRuleText, isScalar } from '../rule-lang/check.js';
import { checkGenerated, formatNumber, genId } from '../rule-lang/emit.js';
import { differentiate, type BackProgram, type DElem, type Scatter } from '../rule-lang/grad.js';
import { byLine, extent, flatIndex, lowerRule, type Program, type Step, type Temp } from '../rule-lang/lower.js';
import type { RuleBackward, TokenGrads } from '../backward/common.js';
import { ShapeError } from '../errors.js';
import type { Dims, InputDecl, Rule, TokenInputs } from '../types.js';

export interface TextRule extends Rule {
  readonly checked: CheckedRule;
  /** diagnostics that did not stop the rule (e.g. a non-linear read-out), with the quoted text */
  readonly notes: readonly string[];
  /** the generated JavaScript of the token step and of the read-out, and of their backwards */
  readonly jsSource: { update: string; read: string; updateBack: string; readBack: string };
  /** the reverse step derived from the lowered program (reference/rule-lang/grad.ts) */
  readonly backward: RuleBackward;
}

/** Parse, check and compile a rule text. Throws RuleError quoting the offending text. */
export function ruleFromText(text: string, opts: { name?: string; file?: string } = {}): TextRule {
  return ruleFromChecked(checkRuleText(text, opts));
}

const dimJs = (d: Dim) => (d === 1 ? '1' : d);

/** Helpers the generated code calls (softplus in its overflow-safe form). */
const HELPERS = {
  sigmoid: (x: number) => 1 / (1 + Math.exp(-x)),
  softplus: (x: number) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x))),
  silu: (x: number) => x / (1 + Math.exp(-x)),
};

/** Every identifier the generated JavaScript may use besides generated ones (reference/rule-lang/emit.ts). */
const JS_VOCABULARY = new Set(['const', 'let', 'for', 'S', 'x', 'N', 'q', 'o', 'dk', 'dv', 'T', 'H', 'i', 'j', 'l', 'acc', 'Math', 'line', 'exp', 'log', 'tanh', 'sqrt', 'abs', 'max', 'min', ...Object.keys(HELPERS)]);
/** The backward's: the forward's, its arguments (the gradients) and sign. */
const JS_BACK_VOCABULARY = new Set([...JS_VOCABULARY, 'g', 'dS', 'dq', 'dx', 'sign']);

function jsElem(e: DElem): string {
  switch (e.op) {
    case 'num':
      return formatNumber(e.value);
    case 'scalar':
      return e.id;
    case 'size':
      return e.dim;
    case 'load': {
      const arr = e.kind === 'input' || e.kind === 'temp' ? e.id : e.kind === 'state' ? 'S' : 'q';
      return `${arr}[${flatIndex(e.shape, e.i, e.j, dimJs)}]`;
    }
    case 'neg':
      return `(-${jsElem(e.a)})`;
    case 'bin':
      return `(${jsElem(e.a)} ${e.o} ${jsElem(e.b)})`;
    case 'fn':
      return e.fn in HELPERS ? `H.${e.fn}(${jsElem(e.a)})` : `Math.${e.fn}(${jsElem(e.a)})`;
    case 'diag':
      return `(${e.i} === ${e.j} ? ${jsElem(e.a)} : 0)`;
    case 'max':
    case 'min':
      return `Math.${e.op}(${jsElem(e.a)}, ${jsElem(e.b)})`;
    case 'sign':
      return `Math.sign(${jsElem(e.a)})`;
    case 'ge':
      return `(${jsElem(e.a)} >= ${jsElem(e.b)} ? ${jsElem(e.then)} : ${jsElem(e.otherwise)})`;
  }
}

function jsStep(s: Step): string[] {
  switch (s.kind) {
    case 'scalar':
      return [`const ${s.id} = ${jsElem(s.expr)};`];
    case 'array':
      return [
        `for (let i = 0; i < ${extent(s.shape.r, dimJs)}; i++) for (let j = 0; j < ${extent(s.shape.c, dimJs)}; j++) ` +
          `${s.id}[${flatIndex(s.shape, 'i', 'j', dimJs)}] = ${jsElem(s.expr)};`,
      ];
    case 'reduce': {
      const term = s.b ? `${jsElem(s.a)} * ${jsElem(s.b)}` : `${jsElem(s.a)} ** 2`;
      if (s.shape.r === 1 && s.shape.c === 1) {
        return [`let ${s.id} = 0;`, `{ const i = 0, j = 0; for (let l = 0; l < ${dimJs(s.inner)}; l++) ${s.id} += ${term}; }`];
      }
      return [
        `for (let i = 0; i < ${extent(s.shape.r, dimJs)}; i++) for (let j = 0; j < ${extent(s.shape.c, dimJs)}; j++) {`,
        `  let acc = 0;`,
        `  for (let l = 0; l < ${dimJs(s.inner)}; l++) acc += ${term};`,
        `  ${s.id}[${flatIndex(s.shape, 'i', 'j', dimJs)}] = acc;`,
        `}`,
      ];
    }
    case 'state':
      return [`for (let i = 0; i < dk; i++) for (let j = 0; j < dv; j++) S[i * dv + j] = ${jsElem(s.expr)};`];
    case 'output':
      return [`for (let i = 0; i < dv; i++) o[i] = ${jsElem(s.expr)};`];
  }
}

/**
 * The body of `(S, x, N | q, dk, dv, T, H[, o])` for a list of steps: input n is `x[N[n]]`, so the
 * rule's input names stay data and never become code.
 */
function jsFunction(prog: Program, steps: Step[], inputs: readonly InputDecl[] | null): string {
  const lines: string[] = [];
  if (inputs) inputs.forEach((_, n) => prog.usedInputs.has(n) && lines.push(`const ${genId('in', n)} = x[N[${n}]];`));
  for (const t of prog.temps) lines.push(`const ${t.id} = T.${t.id};`);
  lines.push(...byLine(steps, jsStep));
  return `"use strict";\n${checkGenerated(lines.join('\n'), JS_VOCABULARY, 'JavaScript')}`;
}

const sizeJs = (t: Temp) => `${extent(t.shape.r, dimJs)} * ${extent(t.shape.c, dimJs)}`;

/** One reverse step: its additions inside loops over i, j (and l). */
function jsScatter(s: Scatter): string[] {
  const body = s.adds.map((a) => `${a.target}${a.shape ? `[${flatIndex(a.shape, a.i, a.j, dimJs)}]` : ''} += ${jsElem(a.coef)};`);
  const inner = s.inner === null ? body : [`for (let l = 0; l < ${dimJs(s.inner)}; l++) {`, ...body.map((l) => `  ${l}`), `}`];
  return [`for (let i = 0; i < ${extent(s.r, dimJs)}; i++) for (let j = 0; j < ${extent(s.c, dimJs)}; j++) {`, ...inner.map((l) => `  ${l}`), `}`];
}

/**
 * The body of a backward (reference/rule-lang/grad.ts): the token step's is
 * `(S, x, N, dS, dx, dk, dv, T, H)`, the read-out's `(S, q, g, dS, dq, dk, dv, T, H)`; input n's
 * gradient is `dx[N[n]]`, so input names stay data here too.
 */
function jsBackFunction(back: BackProgram, inputs: readonly InputDecl[] | null): string {
  const lines: string[] = [];
  if (inputs) inputs.forEach((_, n) => lines.push(`const ${genId('in', n)} = x[N[${n}]];`));
  for (const [n, id] of back.inputGrads) lines.push(`const ${id} = dx[N[${n}]];`);
  if (back.queryGrad) lines.push(`const ${back.queryGrad} = dq;`);
  if (back.outputGrad) lines.push(`const ${back.outputGrad} = g;`);
  lines.push(`const ${back.stateGradOut} = dS;`);
  for (const t of back.temps) lines.push(`const ${t.id} = T.${t.id};`);
  lines.push(...byLine(back.forward.filter((s) => s.kind !== 'output'), jsStep));
  for (const t of back.zero) lines.push(`for (let i = 0; i < ${sizeJs(t)}; i++) ${t.id}[i] = 0;`);
  for (const id of back.scalars) lines.push(`let ${id} = 0;`);
  lines.push(...back.reverse.flatMap((s) => [`// line ${s.line}`, ...jsScatter(s)]));
  if (back.stateGradIn !== back.stateGradOut) lines.push(`for (let i = 0; i < dk * dv; i++) dS[i] = ${back.stateGradIn}[i];`);
  return `"use strict";\n${checkGenerated(lines.join('\n'), JS_BACK_VOCABULARY, 'JavaScript')}`;
}

type StepFn = (S: Float64Array, x: TokenInputs, N: readonly string[], dk: number, dv: number, T: Record<string, Float64Array>, H: typeof HELPERS) => void;
type ReadFn = (S: Float64Array, q: Float64Array, dk: number, dv: number, T: Record<string, Float64Array>, H: typeof HELPERS, o: Float64Array) => void;
type StepBackFn = (S: Float64Array, x: TokenInputs, N: readonly string[], dS: Float64Array, dx: TokenGrads, dk: number, dv: number, T: Record<string, Float64Array>, H: typeof HELPERS) => void;
type ReadBackFn = (S: Float64Array, q: Float64Array, g: Float64Array, dS: Float64Array, dq: Float64Array, dk: number, dv: number, T: Record<string, Float64Array>, H: typeof HELPERS) => void;

/** Scratch arrays for a list of temporaries, allocated once per (dk, dv). */
function scratchFor(temps: readonly Temp[]): (d: Dims) => Record<string, Float64Array> {
  const cache = new Map<string, Record<string, Float64Array>>();
  return (d) => {
    const key = `${d.dk}x${d.dv}`;
    let t = cache.get(key);
    if (!t) {
      const size = (x: Dim) => (x === 1 ? 1 : d[x]);
      t = Object.fromEntries(temps.map((tm) => [tm.id, new Float64Array(size(tm.shape.r) * size(tm.shape.c))]));
      cache.set(key, t);
    }
    return t;
  };
}

export function ruleFromChecked(checked: CheckedRule): TextRule {
  const prog = lowerRule(checked);
  const update = jsFunction(prog, prog.update, checked.inputs);
  const read = jsFunction(prog, prog.read, null);
  const stepFn = new Function('S', 'x', 'N', 'dk', 'dv', 'T', 'H', update) as StepFn;
  const names = checked.inputs.map((d) => d.name);
  const readFn = new Function('S', 'q', 'dk', 'dv', 'T', 'H', 'o', read) as ReadFn;
  // Temporaries depend on dk and dv only: allocated once per size pair.
  const temps = scratchFor(prog.temps);
  const updateBackProg = differentiate(prog, 'update');
  const readBackProg = differentiate(prog, 'read');
  const updateBack = jsBackFunction(updateBackProg, checked.inputs);
  const readBack = jsBackFunction(readBackProg, null);
  const stepBackFn = new Function('S', 'x', 'N', 'dS', 'dx', 'dk', 'dv', 'T', 'H', updateBack) as StepBackFn;
  const readBackFn = new Function('S', 'q', 'g', 'dS', 'dq', 'dk', 'dv', 'T', 'H', readBack) as ReadBackFn;
  const updateBackTemps = scratchFor(updateBackProg.temps);
  const readBackTemps = scratchFor(readBackProg.temps);
  const backward: RuleBackward = {
    name: checked.name,
    stepBack(S, x, dS, dx, dims) {
      checkSizes(checked, S, x, dims);
      stepBackFn(S, x, names, dS, dx, dims.dk, dims.dv, updateBackTemps(dims), HELPERS);
    },
    readBack(S, q, g, dims, dS, dq) {
      readBackFn(S, q, g, dS, dq, dims.dk, dims.dv, readBackTemps(dims), HELPERS);
    },
  };
  return {
    name: checked.name,
    inputs: checked.inputs,
    readLinear: checked.readLinear,
    checked,
    notes: checked.notes,
    jsSource: { update, read, updateBack, readBack },
    backward,
    step(S, x, dims) {
      checkSizes(checked, S, x, dims);
      stepFn(S, x, names, dims.dk, dims.dv, temps(dims), HELPERS);
    },
    read(S, q, dims, out) {
      readFn(S, q, dims.dk, dims.dv, temps(dims), HELPERS, out);
    },
  };
}

function checkSizes(rule: CheckedRule, S: Float64Array, x: TokenInputs, dims: Dims): void {
  if (S.length !== dims.dk * dims.dv) throw new ShapeError(`rule '${rule.name}': state has ${S.length} values, expected dk*dv = ${dims.dk * dims.dv}`);
  for (const d of rule.inputs) {
    const v = x[d.name];
    const want = d.width === 'scalar' ? 1 : dims[d.width];
    if (v === undefined) throw new ShapeError(`rule '${rule.name}': input '${d.name}' is missing`);
    if (typeof v === 'number' ? want !== 1 : v.length !== want) {
      throw new ShapeError(`rule '${rule.name}': input '${d.name}' has ${typeof v === 'number' ? 'a scalar' : `${v.length} values`}, expected ${d.width === 'scalar' ? 'a scalar' : `${d.width} = ${want}`}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The mathjs interpreter: the same tree, evaluated with mathjs matrices (the oracle of the tests).

type Val = number | math.Matrix;

const asScalar = (v: Val): Val => v;
const col = (a: ArrayLike<number>): math.Matrix => math.matrix(Array.from(a, (x) => [x]));

/** mathjs collapses nothing by itself; make a value's kind follow the node's declared shape. */
function evalTree(e: TExpr, env: Env): Val {
  const v = evalNode(e, env);
  if (isScalar(e.shape)) return typeof v === 'number' ? v : (math.flatten(v).get([0]) as number);
  return typeof v === 'number' ? math.matrix([[v]]) : v;
}

interface Env {
  S: math.Matrix;
  x: TokenInputs | null;
  q: Float64Array | null;
  lets: Map<string, Val>;
  dims: Dims;
}

function evalNode(e: TExpr, env: Env): Val {
  const ev = (n: TExpr) => evalTree(n, env);
  const elementwise = (v: Val, f: (x: number) => number): Val => (typeof v === 'number' ? f(v) : (math.map(v as never, (x: number) => f(x)) as unknown as math.Matrix));
  switch (e.kind) {
    case 'num':
      return e.value;
    case 'ref':
      switch (e.ref) {
        case 'state':
          return env.S;
        case 'size':
          return env.dims[e.name as 'dk' | 'dv'];
        case 'query':
          return col(env.q!);
        case 'let':
          return env.lets.get(e.name)!;
        case 'input': {
          const v = env.x![e.name];
          return typeof v === 'number' ? v : col(v);
        }
      }
    // eslint-disable-next-line no-fallthrough
    case 'neg':
      return math.unaryMinus(ev(e.arg) as never) as Val;
    case 'transpose': {
      const v = ev(e.arg);
      return typeof v === 'number' ? v : math.transpose(v);
    }
    case 'add':
      return asScalar(math.add(ev(e.a), ev(e.b)) as Val);
    case 'sub':
      return asScalar(math.subtract(ev(e.a), ev(e.b)) as Val);
    case 'mul':
      return asScalar(math.dotMultiply(ev(e.a) as never, ev(e.b) as never) as Val);
    case 'div':
      return asScalar(math.dotDivide(ev(e.a) as never, ev(e.b) as never) as Val);
    case 'matmul':
      return asScalar(math.multiply(ev(e.a) as math.Matrix, ev(e.b) as math.Matrix) as Val);
    case 'pow':
      return asScalar(math.dotPow(ev(e.a), e.exponent) as Val);
    case 'fn': {
      const f = { exp: Math.exp, log: Math.log, tanh: Math.tanh, sqrt: Math.sqrt, abs: Math.abs, ...HELPERS }[e.fn];
      return elementwise(ev(e.arg), f);
    }
    case 'diag': {
      const v = ev(e.arg) as math.Matrix;
      return math.diag((math.flatten(v) as math.Matrix).toArray() as number[]) as math.Matrix;
    }
    case 'norm': {
      const v = ev(e.arg);
      return typeof v === 'number' ? Math.abs(v) : (math.norm(v, 'fro') as number);
    }
    case 'sum':
      return math.sum(ev(e.arg) as never) as number;
    case 'eye':
      return math.identity(env.dims[e.n]) as math.Matrix;
    case 'max':
      return math.max(ev(e.a) as number, ev(e.b) as number);
    case 'min':
      return math.min(ev(e.a) as number, ev(e.b) as number);
  }
}

const toMatrix = (S: Float64Array, d: Dims) => math.matrix(Array.from({ length: d.dk }, (_, i) => Array.from(S.subarray(i * d.dv, (i + 1) * d.dv))));

/** The rule evaluated node by node with mathjs (slow; an independent oracle for `ruleFromText`). */
export function interpretRule(checked: CheckedRule): Rule {
  return {
    name: `${checked.name} (mathjs interpreter)`,
    inputs: checked.inputs,
    readLinear: checked.readLinear,
    step(S, x, dims) {
      const env = { S: toMatrix(S, dims), x, q: null, lets: new Map<string, Val>(), dims };
      for (const st of checked.body) {
        const v = evalTree(st.expr, env);
        if (st.kind === 'let') env.lets.set(st.name, v);
        else env.S = v as math.Matrix;
      }
      S.set((math.flatten(env.S) as math.Matrix).toArray() as number[]);
    },
    read(S, q, dims, out) {
      const v = evalTree(checked.output.expr, { S: toMatrix(S, dims), x: null, q, lets: new Map(), dims }) as math.Matrix;
      out.set((math.flatten(v) as math.Matrix).toArray() as number[]);
    },
  };
}
