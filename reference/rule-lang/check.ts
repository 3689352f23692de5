/**
 * Names and shapes, before anything runs. Every expression gets a shape r×c with r, c in
 * {1, dk, dv} (1×1 is a scalar); dk and dv are distinct symbols, so `k + v` is an error even
 * when a run happens to use dk = dv. Mathjs meanings: `*` is the matrix product (a scalar on
 * either side scales), `+ - .* ./` are elementwise (a scalar operand is broadcast), `/` divides by
 * a scalar, `'` transposes. The output line is also checked for linearity in the state
 * (docs/spec.md §4: only then do mixing before and after the read-out agree); a non-linear read-out is
 * allowed but reported in `notes`, quoting the part that breaks linearity.
 */
import type { InputDecl, InputRange } from '../types.js';
import type { BinaryOp, Expr } from './expr.js';
import { F32_MAX } from './emit.js';
import { RuleError } from '../errors.js';
import { combineErrors, parseRuleFileAll, QUERY, type RuleFile } from './parse.js';
import { formatDiagnostic, ruleError, textOf, type Source, type Span } from './source.js';

export type Dim = 1 | 'dk' | 'dv';
export interface Shape {
  r: Dim;
  c: Dim;
}

/** Elementwise functions, all defined on the reals (sqrt and log of negatives give NaN, as in JS and WGSL). */
export const ELEMENTWISE = ['exp', 'log', 'sigmoid', 'tanh', 'sqrt', 'abs', 'softplus', 'silu'] as const;
export type ElementwiseFn = (typeof ELEMENTWISE)[number];
/**
 * diag(x): a vector to the diagonal matrix; norm(x): the l2 (Frobenius) norm; sum(x): the sum of
 * all entries; eye(dk) / eye(dv): the identity; max(a, b) / min(a, b): of two scalars (mathjs's
 * max of matrices is the largest entry, not elementwise, so only scalars are accepted).
 */
export const FUNCTIONS = [...ELEMENTWISE, 'diag', 'norm', 'sum', 'eye', 'max', 'min'] as const;

/** Where a name comes from: the state, a per-token input, the query, a `let`, or dk/dv as numbers. */
export type RefKind = 'state' | 'input' | 'query' | 'let' | 'size';

export type TExpr = { shape: Shape; span: Span } & (
  | { kind: 'num'; value: number }
  | { kind: 'ref'; ref: RefKind; name: string }
  | { kind: 'neg'; arg: TExpr }
  | { kind: 'transpose'; arg: TExpr }
  /** elementwise with scalar broadcast; `*` with a scalar operand is 'mul' too */
  | { kind: 'add' | 'sub' | 'mul' | 'div'; a: TExpr; b: TExpr }
  /** matrix product of two non-scalars, inner size `inner` */
  | { kind: 'matmul'; a: TExpr; b: TExpr; inner: Dim }
  /** elementwise integer power (exponent a literal 1..4) */
  | { kind: 'pow'; a: TExpr; exponent: number }
  | { kind: 'fn'; fn: ElementwiseFn; arg: TExpr }
  | { kind: 'diag'; arg: TExpr }
  | { kind: 'norm' | 'sum'; arg: TExpr }
  | { kind: 'eye'; n: 'dk' | 'dv' }
  | { kind: 'max' | 'min'; a: TExpr; b: TExpr }
);

export interface TStatement {
  kind: 'let' | 'update';
  name: string;
  expr: TExpr;
  line: number;
}

export interface CheckedRule {
  name: string;
  file: RuleFile;
  src: Source;
  stateName: string;
  /** InputDecl per declared input, in order (reference/types.ts) */
  inputs: InputDecl[];
  body: TStatement[];
  output: { name: string; expr: TExpr; line: number };
  /** true when the read-out is linear (homogeneous, degree 1) in the state */
  readLinear: boolean;
  /** diagnostics that do not stop the rule (a non-linear read-out), each quoting the text */
  notes: string[];
}

export const isScalar = (s: Shape) => s.r === 1 && s.c === 1;
export const showShape = (s: Shape) => (isScalar(s) ? 'scalar' : `${s.r}×${s.c}`);
const SCALAR: Shape = { r: 1, c: 1 };

/**
 * Parse and check a rule text: the one entry point both the reference and the GPU side use.
 * Throws one RuleError listing every error of the file (a line that fails is skipped, and uses of
 * a `let` that failed are not reported again).
 */
export function checkRuleText(text: string, opts: { name?: string; file?: string } = {}): CheckedRule {
  const parsed = parseRuleFileAll(text, opts.file ?? '<rule>');
  if (parsed.fatal) throw combineErrors(parsed.errors);
  const name = opts.name ?? (opts.file ? opts.file.replace(/^.*\//, '').replace(/\.rule$/, '') : 'text-rule');
  const errors = [...parsed.errors];
  const rule = checkRule(parsed.rule, name, errors, parsed.broken);
  if (errors.length) throw combineErrors(errors);
  return rule;
}

/** Thrown for a use of a `let` whose line already failed: that error is reported once, on its line. */
const CASCADE = new Error('a use of a let whose line failed');

/** Checks `file`; errors of statements go to `errors` (the result is then incomplete), others throw. */
export function checkRule(file: RuleFile, name: string, errors: RuleError[] = [], broken = new Set<string>()): CheckedRule {
  const { src } = file;
  const collect = (e: unknown) => {
    if (e === CASCADE) return;
    if (!(e instanceof RuleError)) throw e;
    errors.push(e);
  };
  const stateName = file.state.name;
  const inputs: InputDecl[] = file.inputs.map((i) => ({ name: i.name, width: i.width, range: (file.ranges.get(i.name)?.range ?? 'free') as InputRange }));
  const inputShape = new Map(file.inputs.map((i) => [i.name, i.width === 'scalar' ? SCALAR : ({ r: i.width, c: 1 } as Shape)]));
  const lets = new Map<string, Shape>();

  const body: TStatement[] = [];
  for (const st of file.body) {
    try {
      body.push(statement(st));
    } catch (e) {
      if (st.kind === 'let') broken.add(st.name);
      collect(e);
    }
  }
  function statement(st: RuleFile['body'][number]): TStatement {
    if (st.kind === 'update' && st.name !== stateName) {
      throw ruleError(src, st.nameSpan, `'${st.name}' is not the state: \`update\` assigns the state '${stateName}'; use \`let ${st.name} = ...\` for a temporary`);
    }
    if (st.kind === 'let') {
      const taken = st.name === stateName || inputShape.has(st.name) || st.name === QUERY || st.name === 'dk' || st.name === 'dv' || (FUNCTIONS as readonly string[]).includes(st.name);
      if (taken || lets.has(st.name)) throw ruleError(src, st.nameSpan, `'${st.name}' is already defined (${lets.has(st.name) ? 'by an earlier let' : 'the state, an input, q, dk, dv or a function'}); temporaries need fresh names`);
    }
    const expr = typeOf(st.expr, 'update');
    if (st.kind === 'update' && !(expr.shape.r === 'dk' && expr.shape.c === 'dv')) {
      throw ruleError(src, st.expr.span, `the new state must be dk×dv, this expression is ${showShape(expr.shape)}`);
    }
    if (st.kind === 'let') lets.set(st.name, expr.shape);
    return { kind: st.kind, name: st.name, expr, line: st.line };
  }

  // No output line: the parser has reported it; the statements' errors join that report.
  if (!(file.output as RuleFile['output'] | undefined)) throw combineErrors(errors);
  let outExpr: TExpr = { kind: 'num', value: 0, shape: { r: 'dv', c: 1 }, span: file.output.expr.span };
  try {
    outExpr = typeOf(file.output.expr, 'output');
    if (!(outExpr.shape.r === 'dv' && outExpr.shape.c === 1)) {
      throw ruleError(src, file.output.expr.span, `the output must be a dv×1 column (o = Sᵀq has dv entries), this expression is ${showShape(outExpr.shape)}`);
    }
  } catch (e) {
    collect(e);
  }
  const lin = degree(outExpr);
  const notes: string[] = [];
  if (lin.deg !== 1) {
    const span = lin.culprit?.span ?? file.output.expr.span;
    const why = lin.deg === 0 ? 'the read-out does not depend on the state' : lin.why;
    notes.push(formatDiagnostic(src, span, `note: the read-out is not linear in the state (${why}); mixing the memories before and after the read-out then differ, so the mixing property is expected to fail`));
  }
  return {
    name,
    file,
    src,
    stateName,
    inputs,
    body,
    output: { name: file.output.name, expr: outExpr, line: file.output.line },
    readLinear: lin.deg === 1,
    notes,
  };

  function typeOf(e: Expr, where: 'update' | 'output'): TExpr {
    const { span } = e;
    switch (e.kind) {
      case 'num':
        if (!(e.value <= F32_MAX)) throw ruleError(src, span, `the number ${textOf(src, span)} is beyond the float32 range (largest ${F32_MAX}): the GPU kernel computes in float32`);
        return { kind: 'num', value: e.value, shape: SCALAR, span };
      case 'sym': {
        const n = e.name;
        if (n === stateName) return { kind: 'ref', ref: 'state', name: n, shape: { r: 'dk', c: 'dv' }, span };
        if (n === 'dk' || n === 'dv') return { kind: 'ref', ref: 'size', name: n, shape: SCALAR, span };
        if (n === QUERY) {
          if (where !== 'output') throw ruleError(src, span, `'q' (the query) is only available to the output line: updates see the state and the per-token inputs`);
          return { kind: 'ref', ref: 'query', name: n, shape: { r: 'dk', c: 1 }, span };
        }
        const inShape = inputShape.get(n);
        if (inShape) {
          if (where === 'output') throw ruleError(src, span, `'${n}' is a per-token input: the read-out sees only the state '${stateName}', q, dk and dv`);
          return { kind: 'ref', ref: 'input', name: n, shape: inShape, span };
        }
        if (broken.has(n)) throw CASCADE;
        const letShape = lets.get(n);
        if (letShape) {
          if (where === 'output') throw ruleError(src, span, `'${n}' is a temporary of the update: the read-out sees only the state '${stateName}', q, dk and dv`);
          return { kind: 'ref', ref: 'let', name: n, shape: letShape, span };
        }
        if ((FUNCTIONS as readonly string[]).includes(n)) throw ruleError(src, span, `'${n}' is a function: call it, e.g. ${n}(x)`);
        const known = [stateName, ...(where === 'output' ? [QUERY] : [...inputShape.keys(), ...lets.keys()]), 'dk', 'dv'];
        throw ruleError(src, span, `unknown symbol '${n}'; known here: ${known.join(', ')}`);
      }
      case 'neg': {
        const arg = typeOf(e.arg, where);
        return { kind: 'neg', arg, shape: arg.shape, span };
      }
      case 'transpose': {
        const arg = typeOf(e.arg, where);
        return { kind: 'transpose', arg, shape: { r: arg.shape.c, c: arg.shape.r }, span };
      }
      case 'binary':
        return binary(e.op, e.left, e.right, span, where);
      case 'call': {
        if (!(FUNCTIONS as readonly string[]).includes(e.fn)) {
          throw ruleError(src, e.fnSpan, `unsupported function '${e.fn}'; supported: ${FUNCTIONS.join(', ')}`);
        }
        if (e.fn === 'eye') {
          const a = e.args[0];
          if (e.args.length !== 1 || a.kind !== 'sym' || (a.name !== 'dk' && a.name !== 'dv')) throw ruleError(src, span, 'eye takes one argument, dk or dv: eye(dk) is the dk×dk identity');
          return { kind: 'eye', n: a.name, shape: { r: a.name, c: a.name }, span };
        }
        if (e.fn === 'max' || e.fn === 'min') {
          if (e.args.length !== 2) throw ruleError(src, span, `${e.fn} takes two arguments, got ${e.args.length}`);
          const [a, b] = e.args.map((x) => typeOf(x, where));
          e.args.forEach((x, n) => {
            const t = [a, b][n];
            if (!isScalar(t.shape)) throw ruleError(src, x.span, `${e.fn} takes two scalars (mathjs's ${e.fn} of a matrix is its ${e.fn === 'max' ? 'largest' : 'smallest'} entry, not elementwise); \`${textOf(src, x.span)}\` is ${showShape(t.shape)}`);
          });
          return { kind: e.fn, a, b, shape: SCALAR, span };
        }
        if (e.args.length !== 1) throw ruleError(src, span, `${e.fn} takes one argument, got ${e.args.length}`);
        const arg = typeOf(e.args[0], where);
        if (e.fn === 'diag') {
          const n = arg.shape.c === 1 ? arg.shape.r : arg.shape.r === 1 ? arg.shape.c : null;
          if (n === null || n === 1) throw ruleError(src, span, `diag takes a vector (dk×1 or dv×1) and makes a diagonal matrix; \`${textOf(src, e.args[0].span)}\` is ${showShape(arg.shape)}`);
          return { kind: 'diag', arg, shape: { r: n, c: n }, span };
        }
        if (e.fn === 'norm' || e.fn === 'sum') return { kind: e.fn, arg, shape: SCALAR, span };
        return { kind: 'fn', fn: e.fn as ElementwiseFn, arg, shape: arg.shape, span };
      }
    }
  }

  function binary(op: BinaryOp, l: Expr, r: Expr, span: Span, where: 'update' | 'output'): TExpr {
    const a = typeOf(l, where);
    const b = typeOf(r, where);
    const quote = (x: Expr, t: TExpr) => `\`${textOf(src, x.span)}\` is ${showShape(t.shape)}`;
    const elementwise = (kind: 'add' | 'sub' | 'mul' | 'div', verb: string): TExpr => {
      if (isScalar(a.shape)) return { kind, a, b, shape: b.shape, span };
      if (isScalar(b.shape) || (a.shape.r === b.shape.r && a.shape.c === b.shape.c)) return { kind, a, b, shape: a.shape, span };
      throw ruleError(src, span, `shape mismatch: cannot ${verb} ${showShape(a.shape)} and ${showShape(b.shape)} (${quote(l, a)}, ${quote(r, b)})`);
    };
    switch (op) {
      case '+':
        return elementwise('add', 'add');
      case '-':
        return elementwise('sub', 'subtract');
      case '.*':
        return elementwise('mul', 'multiply elementwise');
      case './':
        return elementwise('div', 'divide elementwise');
      case '/':
        if (!isScalar(b.shape)) throw ruleError(src, span, `division by a ${showShape(b.shape)} matrix is a matrix division in mathjs and is not supported (${quote(r, b)}); use './' to divide elementwise`);
        return { kind: 'div', a, b, shape: a.shape, span };
      case '*':
        if (isScalar(a.shape) || isScalar(b.shape)) return elementwise('mul', 'multiply');
        if (a.shape.c !== b.shape.r) {
          throw ruleError(src, span, `shape mismatch: cannot multiply ${showShape(a.shape)} by ${showShape(b.shape)}: the inner sizes ${a.shape.c} and ${b.shape.r} differ (${quote(l, a)}, ${quote(r, b)})`);
        }
        if (a.shape.r === 1 && b.shape.c === 1 && a.shape.c === 1) return { kind: 'mul', a, b, shape: SCALAR, span };
        return { kind: 'matmul', a, b, inner: a.shape.c, shape: { r: a.shape.r, c: b.shape.c }, span };
      case '^':
      case '.^': {
        if (op === '^' && !isScalar(a.shape)) throw ruleError(src, span, `'^' on a ${showShape(a.shape)} matrix is a matrix power in mathjs; use '.^' for an elementwise power`);
        if (b.kind !== 'num' || !Number.isInteger(b.value) || b.value < 1 || b.value > 4) {
          throw ruleError(src, r.span, `the exponent must be an integer literal from 1 to 4 (use sqrt, exp and log for other powers), got \`${textOf(src, r.span)}\``);
        }
        return { kind: 'pow', a, exponent: b.value, shape: a.shape, span };
      }
    }
  }
}

/** Degree in the state: 0 constant, 1 linear (homogeneous), 2 anything else; with the first culprit. */
function degree(e: TExpr): { deg: 0 | 1 | 2; culprit?: TExpr; why: string } {
  const nonlinear = (why: string, culprit: TExpr) => ({ deg: 2 as const, culprit, why });
  switch (e.kind) {
    case 'num':
    case 'eye':
      return { deg: 0, why: '' };
    case 'sum':
      return degree(e.arg);
    case 'ref':
      return { deg: e.ref === 'state' ? 1 : 0, why: '' };
    case 'neg':
    case 'transpose':
    case 'diag':
      return degree(e.arg);
    case 'add':
    case 'sub': {
      const a = degree(e.a);
      const b = degree(e.b);
      if (a.deg === 2) return a;
      if (b.deg === 2) return b;
      if (a.deg !== b.deg) return nonlinear(`a term that does not depend on the state is ${e.kind === 'add' ? 'added' : 'subtracted'}`, a.deg === 0 ? e.a : e.b);
      return { deg: a.deg, why: '' };
    }
    case 'mul':
    case 'matmul':
    case 'div': {
      const a = degree(e.a);
      const b = degree(e.b);
      if (a.deg === 2) return a;
      if (b.deg === 2) return b;
      if (e.kind === 'div' && b.deg > 0) return nonlinear('a division by a value that depends on the state', e);
      if (a.deg + b.deg > 1) return nonlinear('a product of two factors that depend on the state', e);
      return { deg: (a.deg + b.deg) as 0 | 1, why: '' };
    }
    case 'max':
    case 'min': {
      const a = degree(e.a);
      const b = degree(e.b);
      if (a.deg === 2) return a;
      if (b.deg === 2) return b;
      if (a.deg + b.deg > 0) return nonlinear(`${e.kind} of a value that depends on the state`, e);
      return { deg: 0, why: '' };
    }
    case 'pow':
    case 'fn':
    case 'norm': {
      const a = degree(e.kind === 'pow' ? e.a : e.arg);
      if (a.deg === 2) return a;
      if (a.deg === 1 && !(e.kind === 'pow' && e.exponent === 1)) {
        return nonlinear(`${e.kind === 'pow' ? `a power ${e.exponent}` : e.kind === 'fn' ? e.fn : e.kind} of a value that depends on the state`, e);
      }
      return { deg: a.deg, why: '' };
    }
  }
}
