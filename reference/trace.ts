/**
 * Per-token events of the core recurrence (docs/spec.md §2, 4) for one sequence and one head, with
 * everything a learner needs to redo a step by hand: the routing, each active memory's inputs
 * and its state before and after, its own read-out, and both mixed outputs.
 */
import { ConfigError } from './errors.js';
import { routeToken } from './router.js';
import { emptyState, mixStates, routedState, scaleOf, sharedState, tokenInputs } from './mom.js';
import { explainStep, type StepPart } from './explain.js';
import type { CoreConfig, CoreInputs, MemoryInputs, Rule, TokenInputs } from './types.js';
import { validateCore } from './validate.js';

/** One memory's part in a token's step. Matrices are [dk][dv]; gates the rule does not use are null. */
export interface TraceMemory {
  index: number;
  k: number[] | null;
  v: number[] | null;
  g: number | number[] | null;
  beta: number | null;
  /** inputs other than k, v, g, beta (rules written as math may have them); absent otherwise */
  extra?: Record<string, number | number[]>;
  stateBefore: number[][];
  /** the step's intermediates (reference/explain.ts): for the delta rules S̄, prediction, error, write */
  steps: StepPart[];
  stateAfter: number[][];
  /** this memory's own read-out read(S_after, q), before weighting */
  output: number[];
}

export type TraceShared = Omit<TraceMemory, 'index'>;

export interface TraceEvent {
  t: number;
  logits: number[];
  probs: number[];
  /** I_t: ordered by descending probability, then ascending index */
  selected: number[];
  /** w_t over `selected`, summing to 1 */
  weights: number[];
  /** the query as read, already multiplied by the scale s */
  q: number[];
  memories: TraceMemory[];
  /** the memories the router did not select: their states are exactly as before (no decay either) */
  unchanged: number[];
  shared: TraceShared | null;
  outputMixAfter: number[];
  outputMixBefore: number[];
}

const NAMED = ['k', 'v', 'g', 'beta'];

/** S (dk*dv, row-major) as nested rows [dk][dv]. */
function matrix(S: Float64Array, dk: number, dv: number): number[][] {
  return Array.from({ length: dk }, (_, i) => Array.from(S.subarray(i * dv, (i + 1) * dv)));
}

const plain = (x: Float64Array | number | undefined): number | number[] | null =>
  x === undefined ? null : typeof x === 'number' ? x : Array.from(x);

/** Advance one memory by token inputs `x`, recording what happened. */
function traceMemory(rule: Rule, S: Float64Array, x: TokenInputs, q: Float64Array, cfg: CoreConfig): TraceShared {
  const { dk, dv } = cfg;
  const stateBefore = matrix(S, dk, dv);
  const steps = explainStep(rule, S, x, cfg);
  rule.step(S, x, cfg);
  const out = new Float64Array(dv);
  rule.read(S, q, cfg, out);
  const extraNames = Object.keys(x).filter((n) => !NAMED.includes(n));
  const m: TraceShared = {
    k: plain(x.k) as number[] | null,
    v: plain(x.v) as number[] | null,
    g: plain(x.g),
    beta: plain(x.beta) as number | null,
    stateBefore,
    steps,
    stateAfter: matrix(S, dk, dv),
    output: Array.from(out),
  };
  if (extraNames.length > 0) m.extra = Object.fromEntries(extraNames.map((n) => [n, plain(x[n]) as number | number[]]));
  return m;
}

/** The T events of one sequence (B = H = 1), starting from all-zero memories. Validates eagerly. */
export function traceSteps(rule: Rule, cfg: CoreConfig, x: CoreInputs): Generator<TraceEvent> {
  validateCore(rule, cfg, x);
  if (cfg.B !== 1 || cfg.H !== 1) throw new ConfigError(`traceSteps follows one sequence and one head: needs B = 1 and H = 1, got B = ${cfg.B}, H = ${cfg.H}`);
  return events(rule, cfg, x);
}

function* events(rule: Rule, cfg: CoreConfig, x: CoreInputs): Generator<TraceEvent> {
  const { T, E, topk, dk, dv } = cfg;
  const state = emptyState(cfg);
  const s = scaleOf(cfg);
  for (let t = 0; t < T; t++) {
    const logits = x.logits.subarray(t * E, (t + 1) * E);
    const r = routeToken(logits, topk);
    const q = x.q.subarray(t * dk, (t + 1) * dk).map((v) => s * v);

    const memories: TraceMemory[] = r.indices.map((e) => ({
      index: e,
      ...traceMemory(rule, routedState(state, cfg, e, 0, 0), tokenInputs(rule, x.memories[e], cfg, 0, t, 0), q, cfg),
    }));
    const shared = cfg.shared
      ? traceMemory(rule, sharedState(state, cfg, 0, 0), tokenInputs(rule, x.shared as MemoryInputs, cfg, 0, t, 0), q, cfg)
      : null;

    // Mix after: Σ w_e · output_e + output_shared.
    const after = new Float64Array(dv);
    memories.forEach((m, j) => m.output.forEach((o, c) => (after[c] += r.weights[j] * o)));
    shared?.output.forEach((o, c) => (after[c] += o));

    // Mix before: read(Σ w_e S_e + S_shared, q).
    const M = new Float64Array(dk * dv);
    mixStates(state, cfg, r.indices, r.weights, 0, 0, M);
    const before = new Float64Array(dv);
    rule.read(M, q, cfg, before);

    yield {
      t,
      logits: Array.from(logits),
      probs: Array.from(r.probs),
      selected: r.indices,
      weights: r.weights,
      q: Array.from(q),
      memories,
      unchanged: Array.from({ length: E }, (_, e) => e).filter((e) => !r.indices.includes(e)),
      shared,
      outputMixAfter: Array.from(after),
      outputMixBefore: Array.from(before),
    };
  }
}
