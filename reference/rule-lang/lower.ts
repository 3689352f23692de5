/**
 * Lowering of a checked rule to a straight-line program over elements, shared by the two
 * code generators (reference/rules/from-text.ts emits JS loops over Float64Array,
 * gpu/kernels/from-text.ts emits WGSL). Only what needs a reduction is materialised:
 *
 *   - a matrix product with an inner size dk or dv (a sum over l) -> a temporary array
 *   - every non-trivial scalar (1×1) value -> a named scalar, computed once per token
 *   - every `let` -> a named temporary (scalar or array)
 *
 * Everything else (elementwise arithmetic, broadcasts, transposes, outer products with inner
 * size 1, diag) is inlined as an element expression `elem(i, j)`. The state update is then an
 * elementwise assignment S[i][j] = elem(i, j) that reads S only at [i][j] (every reduction over
 * S was materialised before it), so it can be done in place.
 */
import type { CheckedRule, Dim, ElementwiseFn, Shape, TExpr } from './check.js';
import { isScalar } from './check.js';

/** An index: a loop variable ('i', 'j', 'l') or the constant 0. */
export type Idx = 'i' | 'j' | 'l' | '0';

/** Where an array lives: the state, a vector input, the query, or a temporary. */
export type ArrayKind = 'state' | 'input' | 'query' | 'temp';

export type Elem =
  | { op: 'num'; value: number }
  /** a scalar: a scalar input, a scalar temporary, or dk / dv */
  | { op: 'scalar'; kind: 'input' | 'temp' | 'size'; name: string }
  /** element [i][j] of an array stored row-major with `shape` */
  | { op: 'load'; kind: ArrayKind; name: string; shape: Shape; i: Idx; j: Idx }
  | { op: 'neg'; a: Elem }
  | { op: 'bin'; o: '+' | '-' | '*' | '/'; a: Elem; b: Elem }
  | { op: 'fn'; fn: ElementwiseFn; a: Elem }
  /** diag: `a` when i == j, else 0 */
  | { op: 'diag'; i: Idx; j: Idx; a: Elem };

export type Step =
  /** name = expr, a scalar */
  | { kind: 'scalar'; name: string; expr: Elem; note: string }
  /** name[i][j] = expr over the shape */
  | { kind: 'array'; name: string; shape: Shape; expr: Elem; note: string }
  /** name[i][j] = sum over l < inner of a(i, l) * b(l, j); a 1×1 result is a scalar; `square` sums a(i,l)^2 (norm) */
  | { kind: 'reduce'; name: string; shape: Shape; inner: Dim; a: Elem; b: Elem | null; note: string }
  /** S[i][j] = expr, in place */
  | { kind: 'state'; expr: Elem; note: string }
  /** o[i] = expr(i, 0), i < dv */
  | { kind: 'output'; expr: Elem; note: string };

export interface Temp {
  name: string;
  shape: Shape;
}

export interface Program {
  /** the token step: temporaries then state assignments, in source order */
  update: Step[];
  /** the read-out, ending with the output step */
  read: Step[];
  /** arrays to allocate (scalars are locals) */
  temps: Temp[];
  /** names of inputs the update uses, and whether the read-out uses q */
  usedInputs: Set<string>;
  usesQuery: boolean;
}

export function lowerRule(rule: CheckedRule): Program {
  const temps: Temp[] = [];
  const usedInputs = new Set<string>();
  let usesQuery = false;
  let counter = 0;
  let steps: Step[] = [];
  const letNames = new Map<string, { name: string; shape: Shape }>();
  const fresh = (hint: string) => `t${++counter}${hint ? `_${hint}` : ''}`;
  // Common subexpressions: a materialised value is reused when the same tree (spans ignored)
  // comes again before the state changes (`exp(g)` written twice is computed once).
  let stateVersion = 0;
  const seen = new Map<string, string>();
  const keyOf = (e: TExpr) => `${stateVersion}:${JSON.stringify(e, (k, v) => (k === 'span' ? undefined : v))}`;

  /** Element (i, j) of e; emits the steps its reductions need. */
  function elem(e: TExpr, i: Idx, j: Idx, note: string): Elem {
    if (isScalar(e.shape) && e.kind !== 'num' && e.kind !== 'ref') return { op: 'scalar', kind: 'temp', name: materialise(e, '', note) };
    switch (e.kind) {
      case 'num':
        return { op: 'num', value: e.value };
      case 'ref': {
        if (e.ref === 'size') return { op: 'scalar', kind: 'size', name: e.name };
        if (e.ref === 'input') usedInputs.add(e.name);
        if (e.ref === 'query') usesQuery = true;
        if (e.ref === 'let') {
          const t = letNames.get(e.name)!;
          return isScalar(t.shape) ? { op: 'scalar', kind: 'temp', name: t.name } : { op: 'load', kind: 'temp', name: t.name, shape: t.shape, i: rowIdx(t.shape, i), j: colIdx(t.shape, j) };
        }
        if (isScalar(e.shape)) return { op: 'scalar', kind: 'input', name: e.name };
        const kind = e.ref === 'state' ? 'state' : e.ref === 'query' ? 'query' : 'input';
        return { op: 'load', kind, name: e.name, shape: e.shape, i: rowIdx(e.shape, i), j: colIdx(e.shape, j) };
      }
      case 'neg':
        return { op: 'neg', a: elem(e.arg, i, j, note) };
      case 'transpose':
        return elem(e.arg, j, i, note);
      case 'add':
      case 'sub':
      case 'mul':
      case 'div': {
        const o = ({ add: '+', sub: '-', mul: '*', div: '/' } as const)[e.kind];
        return { op: 'bin', o, a: elem(e.a, i, j, note), b: elem(e.b, i, j, note) };
      }
      case 'pow': {
        let r = elem(e.a, i, j, note);
        const base = r;
        for (let p = 1; p < e.exponent; p++) r = { op: 'bin', o: '*', a: r, b: base };
        return r;
      }
      case 'fn':
        return { op: 'fn', fn: e.fn, a: elem(e.arg, i, j, note) };
      case 'diag':
        // A vector stored as r×1 or 1×r: its k-th entry is elem(k, 0) or elem(0, k).
        return { op: 'diag', i, j, a: e.arg.shape.c === 1 ? elem(e.arg, i, '0', note) : elem(e.arg, '0', i, note) };
      case 'matmul': {
        if (e.inner === 1) return { op: 'bin', o: '*', a: elem(e.a, i, '0', note), b: elem(e.b, '0', j, note) };
        // diag(x) * B scales the rows of B, A * diag(x) the columns: elementwise, no sum.
        if (e.a.kind === 'diag') return { op: 'bin', o: '*', a: diagEntry(e.a, i, note), b: elem(e.b, i, j, note) };
        if (e.b.kind === 'diag') return { op: 'bin', o: '*', a: elem(e.a, i, j, note), b: diagEntry(e.b, j, note) };
        const name = materialise(e, '', note);
        return { op: 'load', kind: 'temp', name, shape: e.shape, i: rowIdx(e.shape, i), j: colIdx(e.shape, j) };
      }
      case 'norm':
        throw new Error('unreachable: norm is scalar and materialised above');
    }
  }

  /** Entry k of the vector on the diagonal of a diag node. */
  function diagEntry(d: TExpr & { kind: 'diag' }, k: Idx, note: string): Elem {
    return d.arg.shape.c === 1 ? elem(d.arg, k, '0', note) : elem(d.arg, '0', k, note);
  }

  /** Compute e into a new temporary (scalar or array) and return its name. */
  function materialise(e: TExpr, hint: string, note: string, fixedName?: string): string {
    const key = keyOf(e);
    const known = seen.get(key);
    if (known && !fixedName) return known;
    const name = fixedName ?? fresh(hint);
    seen.set(key, name);
    if (e.kind === 'matmul' && e.inner !== 1) {
      const a = elem(e.a, 'i', 'l', note);
      const b = elem(e.b, 'l', 'j', note);
      steps.push({ kind: 'reduce', name, shape: e.shape, inner: e.inner, a, b, note });
    } else if (e.kind === 'norm') {
      const sq = fresh('sumsq');
      const a = e.arg.shape.c === 1 ? elem(e.arg, 'l', '0', note) : e.arg.shape.r === 1 ? elem(e.arg, '0', 'l', note) : null;
      if (a) steps.push({ kind: 'reduce', name: sq, shape: { r: 1, c: 1 }, inner: e.arg.shape.c === 1 ? e.arg.shape.r : e.arg.shape.c, a, b: null, note });
      else {
        // Frobenius norm of a matrix: square-sum each row into a column, then sum the column.
        const rows = fresh('rowsq');
        steps.push({ kind: 'reduce', name: rows, shape: { r: e.arg.shape.r, c: 1 }, inner: e.arg.shape.c, a: elem(e.arg, 'i', 'l', note), b: null, note });
        temps.push({ name: rows, shape: { r: e.arg.shape.r, c: 1 } });
        const rowsShape: Shape = { r: e.arg.shape.r, c: 1 };
        steps.push({ kind: 'reduce', name: sq, shape: { r: 1, c: 1 }, inner: e.arg.shape.r, a: { op: 'load', kind: 'temp', name: rows, shape: rowsShape, i: 'l', j: '0' }, b: { op: 'num', value: 1 }, note });
      }
      steps.push({ kind: 'scalar', name, expr: { op: 'fn', fn: 'sqrt', a: { op: 'scalar', kind: 'temp', name: sq } }, note });
      return name;
    } else if (isScalar(e.shape)) {
      steps.push({ kind: 'scalar', name, expr: elemNoHoist(e, note), note });
      return name;
    } else {
      steps.push({ kind: 'array', name, shape: e.shape, expr: elem(e, 'i', 'j', note), note });
    }
    if (!isScalar(e.shape)) temps.push({ name, shape: e.shape });
    return name;
  }

  /** elem of a scalar node without hoisting the node itself (its children may still hoist). */
  function elemNoHoist(e: TExpr, note: string): Elem {
    switch (e.kind) {
      case 'neg':
        return { op: 'neg', a: elem(e.arg, '0', '0', note) };
      case 'transpose':
        return elem(e.arg, '0', '0', note);
      case 'add':
      case 'sub':
      case 'mul':
      case 'div': {
        const o = ({ add: '+', sub: '-', mul: '*', div: '/' } as const)[e.kind];
        return { op: 'bin', o, a: elem(e.a, '0', '0', note), b: elem(e.b, '0', '0', note) };
      }
      case 'fn':
        return { op: 'fn', fn: e.fn, a: elem(e.arg, '0', '0', note) };
      case 'pow': {
        const base = elem(e.a, '0', '0', note);
        let r = base;
        for (let p = 1; p < e.exponent; p++) r = { op: 'bin', o: '*', a: r, b: base };
        return r;
      }
      default:
        return elem(e, '0', '0', note);
    }
  }

  for (const st of rule.body) {
    const note = `line ${st.line}: ${st.text}`;
    if (st.kind === 'let') {
      const name = `let_${st.name}`;
      if (isScalar(st.expr.shape)) {
        if (st.expr.kind === 'num' || st.expr.kind === 'ref') steps.push({ kind: 'scalar', name, expr: elem(st.expr, '0', '0', note), note });
        else materialise(st.expr, '', note, name);
      } else if (st.expr.kind === 'matmul' && st.expr.inner !== 1) materialise(st.expr, '', note, name);
      else {
        steps.push({ kind: 'array', name, shape: st.expr.shape, expr: elem(st.expr, 'i', 'j', note), note });
        temps.push({ name, shape: st.expr.shape });
      }
      letNames.set(st.name, { name, shape: st.expr.shape });
    } else {
      let expr = elem(st.expr, 'i', 'j', note);
      if (!readsStateInPlace(expr)) {
        // Defensive: an update that reads S off its own element would race in place; stage it.
        const name = fresh('next');
        steps.push({ kind: 'array', name, shape: { r: 'dk', c: 'dv' }, expr, note });
        temps.push({ name, shape: { r: 'dk', c: 'dv' } });
        expr = { op: 'load', kind: 'temp', name, shape: { r: 'dk', c: 'dv' }, i: 'i', j: 'j' };
      }
      steps.push({ kind: 'state', expr, note });
      stateVersion++;
    }
  }
  const update = steps;
  steps = [];
  const outNote = `line ${rule.output.line}: ${rule.output.text}`;
  steps.push({ kind: 'output', expr: elem(rule.output.expr, 'i', '0', outNote), note: outNote });
  return { update, read: steps, temps, usedInputs, usesQuery };
}

/** A vector stored as r×1 is indexed by its row only, 1×c by its column only. */
const rowIdx = (s: Shape, i: Idx): Idx => (s.r === 1 ? '0' : i);
const colIdx = (s: Shape, j: Idx): Idx => (s.c === 1 ? '0' : j);

function readsStateInPlace(e: Elem): boolean {
  switch (e.op) {
    case 'load':
      return e.kind !== 'state' || (e.i === 'i' && e.j === 'j');
    case 'neg':
    case 'fn':
    case 'diag':
      return readsStateInPlace(e.a);
    case 'bin':
      return readsStateInPlace(e.a) && readsStateInPlace(e.b);
    default:
      return true;
  }
}

/** The flat index of element [i][j] of an array of `shape`, as source text (dims named dk/dv). */
export function flatIndex(shape: Shape, i: Idx, j: Idx, dimName: (d: Dim) => string): string {
  if (shape.c === 1) return i;
  if (shape.r === 1) return j;
  if (i === '0') return j;
  return `${i} * ${dimName(shape.c)} + ${j}`;
}

/** The loop extent of a dimension. */
export const extent = (d: Dim, dimName: (d: Dim) => string): string => (d === 1 ? '1' : dimName(d));

/** Emit steps, writing each source-line comment once (consecutive steps of one line share it). */
export function noteOnce(steps: Step[], emit: (s: Step, withNote: boolean) => string[]): string[] {
  return steps.flatMap((s, n) => emit(s, n === 0 || steps[n - 1].note !== s.note));
}
