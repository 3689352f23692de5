/**
 * Reverse-mode differentiation of a lowered rule (issue 17 §2): from the straight-line program of
 * reference/rule-lang/lower.ts, the program of its backward step, with no hand work per rule.
 *
 * The backward of one token step recomputes the forward from the state before the step (nothing
 * is stored across tokens but the states, as in reference/backward/), then walks the steps in
 * reverse. Each step y = f(…) sends its adjoint dy to every value it read: for each occurrence of a
 * value in the step's element expression, the symbolic partial derivative along the path to it
 * times dy is added to that value's adjoint at the occurrence's index (a scatter: an occurrence
 * k[i] inside a loop over (i, j) sums over j). A reduction y[i][j] = Σ_l a(i,l) b(l,j) sends
 * dy·b to a's values and dy·a to b's, inside a loop over (i, j, l).
 *
 * The state is assigned in place by the forward; here every `state` step writes a new array (a
 * version), so each statement reads the version it read in the forward. The adjoint of the last
 * version is the incoming ∂L/∂S_t, that of version 0 (the state before the step) is the result.
 *
 * max and min take the subgradient of the branch taken (the first argument on a tie); abs has
 * derivative sign(x) (0 at 0); sqrt has derivative 0 at 0, so that norm(x) has the subgradient 0
 * at x = 0 (a zero initial state) instead of 0·∞. Like every identifier of generated code, the backward's arrays and
 * scalars are made by genId (reference/rule-lang/emit.ts); no text of the rule reaches them.
 */
import type { Dim, ElementwiseFn, Shape } from './check.js';
import { genId, type GenId } from './emit.js';
import type { Elem, Idx, Program, Step, Temp } from './lower.js';

/** An element expression of the backward: the forward's, plus what derivatives need. */
export type DElem =
  | Extract<Elem, { op: 'num' | 'scalar' | 'size' | 'load' }>
  | { op: 'neg'; a: DElem }
  | { op: 'bin'; o: '+' | '-' | '*' | '/'; a: DElem; b: DElem }
  | { op: 'fn'; fn: ElementwiseFn; a: DElem }
  | { op: 'diag'; i: Idx; j: Idx; a: DElem }
  | { op: 'max' | 'min'; a: DElem; b: DElem }
  /** −1, 0 or 1 */
  | { op: 'sign'; a: DElem }
  /** `then` when a >= b, else `otherwise`: the branch a max or min took */
  | { op: 'ge'; a: DElem; b: DElem; then: DElem; otherwise: DElem };

/** One addition `target[i][j] += coef` (a scalar target has no index). */
export interface Add {
  target: GenId;
  /** the shape of the target array; null for a scalar adjoint (a local) */
  shape: Shape | null;
  i: Idx;
  j: Idx;
  coef: DElem;
}

/** The reverse of one forward step: its additions, inside loops over i < r, j < c (and l < inner). */
export interface Scatter {
  line: number;
  r: Dim;
  c: Dim;
  inner: Dim | null;
  adds: Add[];
}

export interface BackProgram {
  /** the forward recompute, each state assignment turned into an array step writing a new version */
  forward: Step[];
  /** the reverse sweep, last forward step first */
  reverse: Scatter[];
  /** scratch arrays: the forward's temporaries, the state versions, the adjoints */
  temps: Temp[];
  /** adjoint arrays to zero before the sweep (a subset of temps) */
  zero: Temp[];
  /** adjoints of scalar temporaries: locals starting at 0 */
  scalars: GenId[];
  /** input n's gradient (bound by the caller to that input's gradient array), for every input read */
  inputGrads: Map<number, GenId>;
  /** the query's gradient (bound by the caller), when the steps read the query */
  queryGrad: GenId | null;
  /** the upstream gradient of the output (bound by the caller), for a read-out */
  outputGrad: GenId | null;
  /** ∂L/∂(state after the steps): bound by the caller to its state gradient */
  stateGradOut: GenId;
  /** ∂L/∂(state before the steps): the same id when no step assigns the state, else a scratch array to copy back */
  stateGradIn: GenId;
  /** the arrays the recompute writes the state into, one per state assignment (the last: the state after the steps) */
  versions: GenId[];
  /** the largest n of the identifiers t<n> made (a second backward in the same code starts after it) */
  last: number;
}

export interface DiffOptions {
  /** read the state before the steps from this array (a temporary) instead of the `state` argument */
  state0?: GenId;
  /** the identifier of ∂L/∂(state after the steps), when it must be shared with other code */
  stateGrad?: GenId;
  /** make identifiers after t<after> (default: after the program's own) */
  after?: number;
}

const num = (value: number): DElem => ({ op: 'num', value });
const neg = (a: DElem): DElem => ({ op: 'neg', a });
const bin = (o: '+' | '-' | '*' | '/', a: DElem, b: DElem): DElem => ({ op: 'bin', o, a, b });
const fn = (f: ElementwiseFn, a: DElem): DElem => ({ op: 'fn', fn: f, a });
/** a·b, leaving out a factor 1 (the seeds of sums are plain adjoints). */
const mul = (a: DElem, b: DElem): DElem => (a.op === 'num' && a.value === 1 ? b : b.op === 'num' && b.value === 1 ? a : bin('*', a, b));

/** d f(a) / da as an expression of a. */
function derivative(f: ElementwiseFn, a: DElem): DElem {
  const sig = fn('sigmoid', a);
  switch (f) {
    case 'exp':
      return fn('exp', a);
    case 'log':
      return bin('/', num(1), a);
    case 'tanh':
      return bin('-', num(1), bin('*', fn('tanh', a), fn('tanh', a)));
    case 'sqrt':
      // 0 at 0 rather than ∞: norm(x) = sqrt(Σx²) then has the subgradient 0 at x = 0 (a zero state).
      return { op: 'ge', a: num(0), b: a, then: num(0), otherwise: bin('/', num(0.5), fn('sqrt', a)) };
    case 'abs':
      return { op: 'sign', a };
    case 'sigmoid':
      return bin('*', sig, bin('-', num(1), sig));
    case 'softplus':
      return sig;
    case 'silu':
      return bin('*', sig, bin('+', num(1), bin('*', a, bin('-', num(1), sig))));
  }
}

type Leaf = Extract<DElem, { op: 'scalar' | 'load' }>;

/** Calls out(leaf, ∂e/∂leaf · seed) for every occurrence of a value in e. */
function backprop(e: DElem, seed: DElem, out: (leaf: Leaf, coef: DElem) => void): void {
  switch (e.op) {
    case 'num':
    case 'size':
      return;
    case 'scalar':
    case 'load':
      return out(e, seed);
    case 'neg':
      return backprop(e.a, neg(seed), out);
    case 'bin':
      switch (e.o) {
        case '+':
          backprop(e.a, seed, out);
          return backprop(e.b, seed, out);
        case '-':
          backprop(e.a, seed, out);
          return backprop(e.b, neg(seed), out);
        case '*':
          backprop(e.a, mul(seed, e.b), out);
          return backprop(e.b, mul(seed, e.a), out);
        case '/':
          backprop(e.a, bin('/', seed, e.b), out);
          return backprop(e.b, neg(bin('/', mul(seed, e.a), bin('*', e.b, e.b))), out);
      }
    // eslint-disable-next-line no-fallthrough
    case 'fn':
      return backprop(e.a, mul(seed, derivative(e.fn, e.a)), out);
    case 'diag':
      return backprop(e.a, { op: 'diag', i: e.i, j: e.j, a: seed }, out);
    case 'max':
      // Math.max / WGSL max return a on a tie: the subgradient of that branch.
      backprop(e.a, { op: 'ge', a: e.a, b: e.b, then: seed, otherwise: num(0) }, out);
      return backprop(e.b, { op: 'ge', a: e.a, b: e.b, then: num(0), otherwise: seed }, out);
    case 'min':
      backprop(e.a, { op: 'ge', a: e.b, b: e.a, then: seed, otherwise: num(0) }, out);
      return backprop(e.b, { op: 'ge', a: e.b, b: e.a, then: num(0), otherwise: seed }, out);
    case 'sign':
    case 'ge':
      throw new Error(`internal error: ${e.op} in a forward expression`);
  }
}

/** The largest n of the generated identifiers t<n> in a program (the backward's start after it). */
function lastTempIndex(steps: Step[], temps: Temp[]): number {
  const ids = [...temps.map((t) => t.id), ...steps.flatMap((s) => ('id' in s ? [s.id] : []))];
  return ids.reduce((m, id) => Math.max(m, Number(/^t(\d+)$/.exec(id)?.[1] ?? 0)), 0);
}

/** Replace loads of the state by loads of a version array (version 0, the argument, stays 'state'). */
function atVersion(e: Elem, version: GenId | null): Elem {
  const sub = (x: Elem) => atVersion(x, version);
  switch (e.op) {
    case 'load':
      return e.kind === 'state' && version ? { op: 'load', kind: 'temp', id: version, shape: e.shape, i: e.i, j: e.j } : e;
    case 'neg':
    case 'fn':
    case 'diag':
      return { ...e, a: sub(e.a) };
    case 'bin':
    case 'max':
    case 'min':
      return { ...e, a: sub(e.a), b: sub(e.b) };
    default:
      return e;
  }
}

const STATE: Shape = { r: 'dk', c: 'dv' };

/**
 * The backward of `steps` (the token update, or the read-out) of `prog`: ∂L/∂(state before),
 * ∂L/∂(inputs), ∂L/∂q from ∂L/∂(state after) and, for the read-out, ∂L/∂o.
 */
export function differentiate(prog: Program, part: 'update' | 'read', opts: DiffOptions = {}): BackProgram {
  let counter = opts.after ?? lastTempIndex([...prog.update, ...prog.read], prog.temps);
  const fresh = () => genId('t', ++counter);
  const temps: Temp[] = [...prog.temps];
  const scratch = (shape: Shape): GenId => {
    const id = fresh();
    temps.push({ id, shape });
    return id;
  };

  // Forward recompute with versions of the state (version 0: the `state` argument, or opts.state0).
  const versions: (GenId | null)[] = [opts.state0 ?? null];
  const forward: Step[] = [];
  for (const s of part === 'update' ? prog.update : prog.read) {
    const v = versions[versions.length - 1];
    if (s.kind === 'state') {
      const id = scratch(STATE);
      forward.push({ kind: 'array', id, shape: STATE, expr: atVersion(s.expr, v), line: s.line });
      versions.push(id);
    } else if (s.kind === 'scalar' || s.kind === 'array' || s.kind === 'output') forward.push({ ...s, expr: atVersion(s.expr, v) });
    else forward.push({ ...s, a: atVersion(s.a, v), b: s.b && atVersion(s.b, v) });
  }

  // Adjoints, made on first use; the last version's is bound to the caller's state gradient.
  const stateGradOut = opts.stateGrad ?? fresh();
  const adjoint = new Map<string, GenId>();
  const zero: Temp[] = [];
  const scalars: GenId[] = [];
  const inputGrads = new Map<number, GenId>();
  let queryGrad: GenId | null = null;
  adjoint.set(versions[versions.length - 1] ?? 'state', stateGradOut);
  const arrayAdjoint = (key: string, shape: Shape): GenId => {
    let id = adjoint.get(key);
    if (!id) {
      id = scratch(shape);
      zero.push({ id, shape });
      adjoint.set(key, id);
    }
    return id;
  };
  const scalarAdjoint = (key: GenId): GenId => {
    let id = adjoint.get(key);
    if (!id) {
      id = fresh();
      scalars.push(id);
      adjoint.set(key, id);
    }
    return id;
  };
  const inputGrad = (id: GenId): GenId => {
    const n = Number(/^in(\d+)$/.exec(id)![1]);
    if (!inputGrads.has(n)) inputGrads.set(n, fresh());
    return inputGrads.get(n)!;
  };

  function target(leaf: Leaf, coef: DElem): Add {
    if (leaf.op === 'scalar') {
      if (leaf.kind === 'input') return { target: inputGrad(leaf.id), shape: { r: 1, c: 1 }, i: '0', j: '0', coef };
      return { target: scalarAdjoint(leaf.id), shape: null, i: '0', j: '0', coef };
    }
    const at = { shape: leaf.shape, i: leaf.i, j: leaf.j, coef };
    switch (leaf.kind) {
      case 'state':
        return { target: arrayAdjoint('state', STATE), ...at };
      case 'query':
        queryGrad ??= fresh();
        return { target: queryGrad, ...at };
      case 'input':
        return { target: inputGrad(leaf.id), ...at };
      case 'temp':
        return { target: arrayAdjoint(leaf.id, leaf.id === opts.state0 ? STATE : temps.find((t) => t.id === leaf.id)!.shape), ...at };
    }
  }

  const outputGrad = part === 'read' ? fresh() : null;
  const reverse: Scatter[] = [];
  for (const s of [...forward].reverse()) {
    const adds: Add[] = [];
    const send = (e: DElem, seed: DElem) => backprop(e, seed, (leaf, coef) => adds.push(target(leaf, coef)));
    const arraySeed = (id: GenId, shape: Shape): DElem | null => {
      const adj = adjoint.get(id);
      return adj ? { op: 'load', kind: 'temp', id: adj, shape, i: shape.r === 1 ? '0' : 'i', j: shape.c === 1 ? '0' : 'j' } : null;
    };
    const scalarSeed = (id: GenId): DElem | null => {
      const adj = adjoint.get(id);
      return adj ? { op: 'scalar', kind: 'temp', id: adj } : null;
    };
    // A value nothing read has adjoint 0: its step sends nothing.
    switch (s.kind) {
      case 'scalar': {
        const seed = scalarSeed(s.id);
        if (seed) send(s.expr, seed);
        if (adds.length) reverse.push({ line: s.line, r: 1, c: 1, inner: null, adds });
        break;
      }
      case 'array': {
        const seed = arraySeed(s.id, s.shape);
        if (seed) send(s.expr, seed);
        if (adds.length) reverse.push({ line: s.line, r: s.shape.r, c: s.shape.c, inner: null, adds });
        break;
      }
      case 'reduce': {
        const scalar = s.shape.r === 1 && s.shape.c === 1;
        const seed = scalar ? scalarSeed(s.id) : arraySeed(s.id, s.shape);
        if (seed) {
          if (s.b) {
            send(s.a, mul(seed, s.b));
            send(s.b, mul(seed, s.a));
          } else send(s.a, mul(seed, bin('*', num(2), s.a)));
        }
        if (adds.length) reverse.push({ line: s.line, r: s.shape.r, c: s.shape.c, inner: s.inner, adds });
        break;
      }
      case 'output':
        send(s.expr, { op: 'load', kind: 'temp', id: outputGrad!, shape: { r: 'dv', c: 1 }, i: 'i', j: '0' });
        reverse.push({ line: s.line, r: 'dv', c: 1, inner: null, adds });
        break;
      case 'state':
        throw new Error('internal error: state step left in the recompute');
    }
  }
  // Steps that never read the state before them give ∂L/∂S_{t-1} = 0 (a zeroed array), not ∂L/∂S_t.
  const stateGradIn = versions.length === 1 ? stateGradOut : arrayAdjoint(versions[0] ?? 'state', STATE);
  return { forward, reverse, temps, zero, scalars, inputGrads, queryGrad, outputGrad, stateGradOut, stateGradIn, versions: versions.slice(1) as GenId[], last: counter };
}
