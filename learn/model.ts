/**
 * What the learn page shows, computed by momlab's own code: the inputs drawn as `momlab trace`
 * draws them (reference/sample.ts), the per-token events of reference/trace.ts, and one chunk of
 * the chunked form (reference/rules/chunk.ts). Nothing here touches the DOM, so tests can call it.
 */
import { ConfigError } from '../reference/errors.js';
import { scaleOf } from '../reference/mom.js';
import { readOut } from '../reference/rules/common.js';
import { observeChunks, type ChunkParts } from '../reference/rules/chunk.js';
import { ruleFromText } from '../reference/rules/from-text.js';
import { getRule, isRuleName, RULE_NAMES, type BuiltinRule } from '../reference/rules/index.js';
import { sampleTokenwise } from '../reference/sample.js';
import { traceSteps, type TraceEvent, type TraceShared } from '../reference/trace.js';
import type { CoreConfig, Rule } from '../reference/types.js';

/** Everything the page's view depends on; each field is kept in the URL. */
export interface Params {
  /** a built-in rule name, or 'file' for `ruleText` */
  rule: string;
  ruleText: string;
  E: number;
  topk: number;
  dk: number;
  dv: number;
  T: number;
  seed: number;
  shared: boolean;
  /** the token shown */
  t: number;
  /** chunked form: chunk size, the memory (-1 = shared) and which of its chunks */
  C: number;
  mem: number;
  chunk: number;
}

export const DEFAULTS: Params = { rule: 'gated-delta', ruleText: '', E: 4, topk: 2, dk: 4, dv: 4, T: 8, seed: 1, shared: true, t: 0, C: 4, mem: 0, chunk: 0 };

/** Bounds that keep the page responsive (the trace holds T·(k+1) matrices). */
const LIMITS: Record<'E' | 'dk' | 'dv' | 'T' | 'C', number> = { E: 16, dk: 16, dv: 16, T: 64, C: 64 };
export const MAX_RULE_TEXT = 16_384;

/** Params from a URL query; a missing or malformed field takes its default, numbers are clamped. */
export function paramsFromQuery(query: string): Params {
  const u = new URLSearchParams(query);
  const p: Params = { ...DEFAULTS };
  const int = (name: keyof Params, lo: number, hi: number) => {
    const raw = u.get(name);
    const n = raw === null ? NaN : Number(raw);
    if (Number.isInteger(n)) (p[name] as number) = Math.min(hi, Math.max(lo, n));
  };
  const rule = u.get('rule');
  if (rule !== null && (isRuleName(rule) || rule === 'file')) p.rule = rule;
  p.ruleText = (u.get('ruleText') ?? '').slice(0, MAX_RULE_TEXT);
  int('E', 1, LIMITS.E);
  int('topk', 1, p.E);
  int('dk', 1, LIMITS.dk);
  int('dv', 1, LIMITS.dv);
  int('T', 1, LIMITS.T);
  int('seed', 0, 2 ** 31 - 1);
  if (u.get('shared') !== null) p.shared = u.get('shared') !== '0';
  int('t', 0, p.T - 1);
  int('C', 1, LIMITS.C);
  int('mem', -1, p.E - 1);
  int('chunk', 0, LIMITS.T);
  return p;
}

export function paramsToQuery(p: Params): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(p)) {
    if (k === 'ruleText' && p.rule !== 'file') continue;
    u.set(k, typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
  }
  return u.toString();
}

export interface Model {
  rule: Rule;
  /** the rule's chunked form, for built-ins */
  builtin: BuiltinRule | null;
  cfg: CoreConfig;
  scale: number;
  events: TraceEvent[];
  /** states[t][e]: routed memory e after token t ([dk][dv]); unselected memories carry over */
  states: number[][][][];
  /** the shared memory after token t, when there is one */
  sharedStates: number[][][] | null;
}

const zeros = (dk: number, dv: number) => Array.from({ length: dk }, () => new Array<number>(dv).fill(0));

/** The trace of `momlab trace --json` for these params (same sampling, same B = H = 1 config). */
export function buildModel(p: Params): Model {
  const builtin = p.rule === 'file' ? null : getRule(p.rule);
  if (p.rule === 'file' && p.ruleText.trim() === '') throw new ConfigError('paste or load a rule file first (or pick a built-in rule)');
  const rule: Rule = builtin ?? ruleFromText(p.ruleText, { file: 'pasted rule' });
  const cfg: CoreConfig = { B: 1, H: 1, T: p.T, E: p.E, topk: p.topk, dk: p.dk, dv: p.dv, shared: p.shared };
  const events = [...traceSteps(rule, cfg, sampleTokenwise(rule, cfg, p.seed))];
  let current = Array.from({ length: p.E }, () => zeros(p.dk, p.dv));
  let shared = zeros(p.dk, p.dv);
  const states: number[][][][] = [];
  const sharedStates: number[][][] = [];
  for (const ev of events) {
    current = current.slice();
    for (const m of ev.memories) current[m.index] = m.stateAfter;
    states.push(current);
    if (ev.shared) shared = ev.shared.stateAfter;
    sharedStates.push(shared);
  }
  return { rule, builtin, cfg, scale: scaleOf(cfg), events, states, sharedStates: p.shared ? sharedStates : null };
}

/** Frobenius norm of a [dk][dv] state. */
export const norm = (S: number[][]): number => Math.sqrt(S.reduce((a, row) => a + row.reduce((b, x) => b + x * x, 0), 0));

/** The parts of one memory's token step that the trace does not record, for the built-in rules' formulas. */
export interface StepParts {
  /** e^g: a number (decay, gated-delta) or per key channel (gla); null without a decay */
  alpha: number | number[] | null;
  /** the decayed state S̄ = α S (or diag(α) S) */
  decayed: number[][];
  /** delta rules: the prediction S̄ᵀk and the error β (v − S̄ᵀk) */
  prediction: number[] | null;
  error: number[] | null;
  /** what the token wrote: S' − S̄ (k vᵀ, or k errorᵀ for the delta rules) */
  write: number[][];
}

export function stepParts(ruleName: string, m: TraceShared, dk: number, dv: number): StepParts {
  const g = m.g;
  const alpha = g === null ? null : typeof g === 'number' ? Math.exp(g) : g.map(Math.exp);
  const decayed = m.stateBefore.map((row, i) => row.map((s) => (alpha === null ? s : typeof alpha === 'number' ? alpha * s : alpha[i] * s)));
  let prediction: number[] | null = null;
  let error: number[] | null = null;
  if ((ruleName === 'delta' || ruleName === 'gated-delta') && m.k && m.v && m.beta !== null) {
    const out = new Float64Array(dv);
    readOut(Float64Array.from(decayed.flat()), Float64Array.from(m.k), { dk, dv }, out); // S̄ᵀk is the read-out of S̄ at k
    prediction = Array.from(out);
    error = m.v.map((v, j) => (m.beta as number) * (v - out[j]));
  }
  const write = m.stateAfter.map((row, i) => row.map((s, j) => s - decayed[i][j]));
  return { alpha, decayed, prediction, error, write };
}

/** One memory's chunked run, and the chunk the page shows. */
export interface ChunkView {
  /** the sequence's tokens (positions in the full sequence) routed to this memory */
  tokens: number[];
  chunks: ChunkParts[];
  /** the chunked form's outputs and the token-by-token ones (from the trace), per routed token: [n][dv] */
  chunked: number[][];
  recurrent: number[][];
}

/**
 * Memory `mem` (-1: the shared one) over the tokens routed to it (docs/spec.md §4, gathered form),
 * through the rule's own `chunked` with chunk size C, recording every chunk's intermediates.
 */
export function chunkView(model: Model, mem: number, C: number): ChunkView {
  const { builtin, cfg, events } = model;
  if (!builtin) throw new ConfigError(`rule '${model.rule.name}' has no chunked form (only the built-in rules ${RULE_NAMES.join(', ')} do)`);
  const picked = events.flatMap((ev) => {
    const m = mem < 0 ? ev.shared : ev.memories.find((x) => x.index === mem);
    return m ? [{ t: ev.t, q: ev.q, m }] : [];
  });
  const { dk, dv } = cfg;
  const n = picked.length;
  const inputs: Record<string, Float64Array> = {};
  for (const d of builtin.inputs) {
    inputs[d.name] = Float64Array.from(
      picked.flatMap(({ m }) => {
        const v = (m as unknown as Record<string, number | number[]>)[d.name];
        return typeof v === 'number' ? [v] : v;
      }),
    );
  }
  const seq = { n, dk, dv, q: Float64Array.from(picked.flatMap((p) => p.q)), inputs };
  const chunks: ChunkParts[] = [];
  const o = observeChunks((c) => chunks.push(c), () => builtin.chunked(seq, new Float64Array(dk * dv), C));
  return {
    tokens: picked.map((p) => p.t),
    chunks,
    chunked: Array.from({ length: n }, (_, i) => Array.from(o.subarray(i * dv, (i + 1) * dv))),
    recurrent: picked.map((p) => p.m.output),
  };
}
