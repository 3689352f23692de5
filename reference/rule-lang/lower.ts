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
 *
 * Names from the rule never reach the program: an input is known by its position (`in0`), a `let`
 * or a temporary by a generated identifier (`t3`), a statement by its line number.
 */
import type { CheckedRule, Dim, ElementwiseFn, Shape, TExpr } from './check.js';
import { isScalar } from './check.js';
import { genId, type GenId } from './emit.js';

/** An index: a loop variable ('i', 'j', 'l') or the constant 0. */
export type Idx = 'i' | 'j' | 'l' | '0';

export type Elem =
  | { op: 'num'; value: number }
  /** a scalar input or a scalar temporary */
  | { op: 'scalar'; kind: 'input' | 'temp'; id: GenId }
  /** dk or dv as a number */
  | { op: 'size'; dim: 'dk' | 'dv' }
  /** element [i][j] of the state, the query, an input or a temporary, stored row-major with `shape` */
  | { op: 'load'; kind: 'state' | 'query'; shape: Shape; i: Idx; j: Idx }
  | { op: 'load'; kind: 'input' | 'temp'; id: GenId; shape: Shape; i: Idx; j: Idx }
  | { op: 'neg'; a: Elem }
  | { op: 'bin'; o: '+' | '-' | '*' | '/'; a: Elem; b: Elem }
  | { op: 'fn'; fn: ElementwiseFn; a: Elem }
  /** diag: `a` when i == j, else 0 */
  | { op: 'diag'; i: Idx; j: Idx; a: Elem }
  /** the larger or smaller of two scalars */
  | { op: 'max' | 'min'; a: Elem; b: Elem };

/** Each step carries the rule line it comes from (generated code cites it as `// line N`). */
export type Step =
  /** id = expr, a scalar */
  | { kind: 'scalar'; id: GenId; expr: Elem; line: number }
  /** id[i][j] = expr over the shape */
  | { kind: 'array'; id: GenId; shape: Shape; expr: Elem; line: number }
  /** id[i][j] = sum over l < inner of a(i, l) * b(l, j); a 1×1 result is a scalar; b null sums a(i,l)^2 (norm) */
  | { kind: 'reduce'; id: GenId; shape: Shape; inner: Dim; a: Elem; b: Elem | null; line: number }
  /** S[i][j] = expr, in place */
  | { kind: 'state'; expr: Elem; line: number }
  /** o[i] = expr(i, 0), i < dv */
  | { kind: 'output'; expr: Elem; line: number };

export interface Temp {
  id: GenId;
  shape: Shape;
}

export interface Program {
  /** the token step: temporaries then state assignments, in source order */
  update: Step[];
  /** the read-out, ending with the output step */
  read: Step[];
  /** arrays to allocate (scalars are locals) */
  temps: Temp[];
  /** positions of the inputs the update uses, and whether the read-out uses q */
  usedInputs: Set<number>;
  usesQuery: boolean;
}

export function lowerRule(rule: CheckedRule): Program {
  const temps: Temp[] = [];
  const usedInputs = new Set<number>();
  const inputIndex = new Map(rule.inputs.map((d, n) => [d.name, n]));
  let usesQuery = false;
  let counter = 0;
  let steps: Step[] = [];
  // The rule's `let` names, mapped to generated identifiers (a side table: never emitted).
  const letIds = new Map<string, { id: GenId; shape: Shape }>();
  const fresh = () => genId('t', ++counter);
  // Common subexpressions: a materialised value is reused when the same tree (spans ignored)
  // comes again before the state changes (`exp(g)` written twice is computed once).
  let stateVersion = 0;
  const seen = new Map<string, GenId>();
  const keyOf = (e: TExpr) => `${stateVersion}:${JSON.stringify(e, (k, v) => (k === 'span' ? undefined : v))}`;

  /** Element (i, j) of e; emits the steps its reductions need. */
  function elem(e: TExpr, i: Idx, j: Idx, line: number): Elem {
    if (isScalar(e.shape) && e.kind !== 'num' && e.kind !== 'ref') return { op: 'scalar', kind: 'temp', id: materialise(e, line) };
    switch (e.kind) {
      case 'num':
        return { op: 'num', value: e.value };
      case 'ref': {
        const at = { shape: e.shape, i: rowIdx(e.shape, i), j: colIdx(e.shape, j) };
        switch (e.ref) {
          case 'size':
            return { op: 'size', dim: e.name as 'dk' | 'dv' };
          case 'state':
            return { op: 'load', kind: 'state', ...at };
          case 'query':
            usesQuery = true;
            return { op: 'load', kind: 'query', ...at };
          case 'let': {
            const t = letIds.get(e.name)!;
            return isScalar(t.shape) ? { op: 'scalar', kind: 'temp', id: t.id } : { op: 'load', kind: 'temp', id: t.id, shape: t.shape, i: rowIdx(t.shape, i), j: colIdx(t.shape, j) };
          }
          case 'input': {
            const n = inputIndex.get(e.name)!;
            usedInputs.add(n);
            const id = genId('in', n);
            return isScalar(e.shape) ? { op: 'scalar', kind: 'input', id } : { op: 'load', kind: 'input', id, ...at };
          }
        }
      }
      case 'neg':
        return { op: 'neg', a: elem(e.arg, i, j, line) };
      case 'transpose':
        return elem(e.arg, j, i, line);
      case 'add':
      case 'sub':
      case 'mul':
      case 'div': {
        const o = ({ add: '+', sub: '-', mul: '*', div: '/' } as const)[e.kind];
        return { op: 'bin', o, a: elem(e.a, i, j, line), b: elem(e.b, i, j, line) };
      }
      case 'pow': {
        let r = elem(e.a, i, j, line);
        const base = r;
        for (let p = 1; p < e.exponent; p++) r = { op: 'bin', o: '*', a: r, b: base };
        return r;
      }
      case 'fn':
        return { op: 'fn', fn: e.fn, a: elem(e.arg, i, j, line) };
      case 'diag':
        // A vector stored as r×1 or 1×r: its k-th entry is elem(k, 0) or elem(0, k).
        return { op: 'diag', i, j, a: e.arg.shape.c === 1 ? elem(e.arg, i, '0', line) : elem(e.arg, '0', i, line) };
      case 'matmul': {
        if (e.inner === 1) return { op: 'bin', o: '*', a: elem(e.a, i, '0', line), b: elem(e.b, '0', j, line) };
        // diag(x) * B scales the rows of B, A * diag(x) the columns: elementwise, no sum.
        // eye(n) * B is B, A * eye(n) is A.
        if (e.a.kind === 'eye') return elem(e.b, i, j, line);
        if (e.b.kind === 'eye') return elem(e.a, i, j, line);
        if (e.a.kind === 'diag') return { op: 'bin', o: '*', a: diagEntry(e.a, i, line), b: elem(e.b, i, j, line) };
        if (e.b.kind === 'diag') return { op: 'bin', o: '*', a: elem(e.a, i, j, line), b: diagEntry(e.b, j, line) };
        const id = materialise(e, line);
        return { op: 'load', kind: 'temp', id, shape: e.shape, i: rowIdx(e.shape, i), j: colIdx(e.shape, j) };
      }
      case 'eye':
        return { op: 'diag', i, j, a: { op: 'num', value: 1 } };
      case 'norm':
      case 'sum':
      case 'max':
      case 'min':
        throw new Error(`unreachable: ${e.kind} is scalar and materialised above`);
    }
  }

  /** Entry k of the vector on the diagonal of a diag node. */
  function diagEntry(d: TExpr & { kind: 'diag' }, k: Idx, line: number): Elem {
    return d.arg.shape.c === 1 ? elem(d.arg, k, '0', line) : elem(d.arg, '0', k, line);
  }

  /** Compute e into a new temporary (scalar or array) and return its identifier. */
  function materialise(e: TExpr, line: number, fixedId?: GenId): GenId {
    const key = keyOf(e);
    const known = seen.get(key);
    if (known && !fixedId) return known;
    const name = fixedId ?? fresh();
    seen.set(key, name);
    if (e.kind === 'matmul' && e.inner !== 1) {
      const a = elem(e.a, 'i', 'l', line);
      const b = elem(e.b, 'l', 'j', line);
      steps.push({ kind: 'reduce', id: name, shape: e.shape, inner: e.inner, a, b, line });
    } else if (e.kind === 'norm' || e.kind === 'sum') {
      // The sum of all entries (of their squares for norm): b null squares a, b = 1 sums it.
      const total = e.kind === 'norm' ? fresh() : name;
      const b: Elem | null = e.kind === 'norm' ? null : { op: 'num', value: 1 };
      const a = e.arg.shape.c === 1 ? elem(e.arg, 'l', '0', line) : e.arg.shape.r === 1 ? elem(e.arg, '0', 'l', line) : null;
      if (a) steps.push({ kind: 'reduce', id: total, shape: { r: 1, c: 1 }, inner: e.arg.shape.c === 1 ? e.arg.shape.r : e.arg.shape.c, a, b, line });
      else {
        // A matrix: sum each row into a column, then sum the column.
        const rows = fresh();
        steps.push({ kind: 'reduce', id: rows, shape: { r: e.arg.shape.r, c: 1 }, inner: e.arg.shape.c, a: elem(e.arg, 'i', 'l', line), b, line });
        temps.push({ id: rows, shape: { r: e.arg.shape.r, c: 1 } });
        const rowsShape: Shape = { r: e.arg.shape.r, c: 1 };
        steps.push({ kind: 'reduce', id: total, shape: { r: 1, c: 1 }, inner: e.arg.shape.r, a: { op: 'load', kind: 'temp', id: rows, shape: rowsShape, i: 'l', j: '0' }, b: { op: 'num', value: 1 }, line });
      }
      if (e.kind === 'norm') steps.push({ kind: 'scalar', id: name, expr: { op: 'fn', fn: 'sqrt', a: { op: 'scalar', kind: 'temp', id: total } }, line });
      return name;
    } else if (isScalar(e.shape)) {
      steps.push({ kind: 'scalar', id: name, expr: elemNoHoist(e, line), line });
      return name;
    } else {
      steps.push({ kind: 'array', id: name, shape: e.shape, expr: elem(e, 'i', 'j', line), line });
    }
    if (!isScalar(e.shape)) temps.push({ id: name, shape: e.shape });
    return name;
  }

  /** elem of a scalar node without hoisting the node itself (its children may still hoist). */
  function elemNoHoist(e: TExpr, line: number): Elem {
    switch (e.kind) {
      case 'neg':
        return { op: 'neg', a: elem(e.arg, '0', '0', line) };
      case 'transpose':
        return elem(e.arg, '0', '0', line);
      case 'add':
      case 'sub':
      case 'mul':
      case 'div': {
        const o = ({ add: '+', sub: '-', mul: '*', div: '/' } as const)[e.kind];
        return { op: 'bin', o, a: elem(e.a, '0', '0', line), b: elem(e.b, '0', '0', line) };
      }
      case 'fn':
        return { op: 'fn', fn: e.fn, a: elem(e.arg, '0', '0', line) };
      case 'max':
      case 'min':
        return { op: e.kind, a: elem(e.a, '0', '0', line), b: elem(e.b, '0', '0', line) };
      case 'pow': {
        const base = elem(e.a, '0', '0', line);
        let r = base;
        for (let p = 1; p < e.exponent; p++) r = { op: 'bin', o: '*', a: r, b: base };
        return r;
      }
      default:
        return elem(e, '0', '0', line);
    }
  }

  for (const st of rule.body) {
    const { line } = st;
    if (st.kind === 'let') {
      const id = fresh();
      if (isScalar(st.expr.shape)) {
        if (st.expr.kind === 'num' || st.expr.kind === 'ref') steps.push({ kind: 'scalar', id, expr: elem(st.expr, '0', '0', line), line });
        else materialise(st.expr, line, id);
      } else if (st.expr.kind === 'matmul' && st.expr.inner !== 1) materialise(st.expr, line, id);
      else {
        steps.push({ kind: 'array', id, shape: st.expr.shape, expr: elem(st.expr, 'i', 'j', line), line });
        temps.push({ id, shape: st.expr.shape });
      }
      letIds.set(st.name, { id, shape: st.expr.shape });
    } else {
      let expr = elem(st.expr, 'i', 'j', line);
      if (!readsStateInPlace(expr)) {
        // Defensive: an update that reads S off its own element would race in place; stage it.
        const id = fresh();
        steps.push({ kind: 'array', id, shape: { r: 'dk', c: 'dv' }, expr, line });
        temps.push({ id, shape: { r: 'dk', c: 'dv' } });
        expr = { op: 'load', kind: 'temp', id, shape: { r: 'dk', c: 'dv' }, i: 'i', j: 'j' };
      }
      steps.push({ kind: 'state', expr, line });
      stateVersion++;
    }
  }
  const update = steps;
  steps = [];
  const outLine = rule.output.line;
  steps.push({ kind: 'output', expr: elem(rule.output.expr, 'i', '0', outLine), line: outLine });
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
    case 'max':
    case 'min':
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

/** Emit steps, each group of consecutive steps from one rule line after a `// line N` comment. */
export function byLine(steps: Step[], emit: (s: Step) => string[]): string[] {
  return steps.flatMap((s, n) => [...(n === 0 || steps[n - 1].line !== s.line ? [`// line ${s.line}`] : []), ...emit(s)]);
}
