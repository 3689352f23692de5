/**
 * What a rule's token step is made of, for learners (the trace and the learn page): the update
 * formula, and for the built-in rules the intermediate quantities of docs/spec.md §3 computed from
 * the state before the step — for the delta rules the decayed state, the prediction S̄ᵀk, the
 * error v − S̄ᵀk and the write. The intermediates are recomputed here from their definitions, then
 * checked against the rule's own step by the trace tests (the write added to S̄ gives S_after).
 */
import type { Dims, Rule, TokenInputs } from './types.js';
import { BUILTIN_RULES } from './rules/index.js';

export interface StepPart {
  /** a short symbol, e.g. `S̄` or `error` */
  name: string;
  /** what it is, in words and the spec's notation */
  about: string;
  value: number | number[] | number[][];
}

/** The update of each built-in rule, as docs/spec.md §3 writes it. */
export const BUILTIN_FORMULAS: Record<string, string> = {
  linear: "S' = S + k vᵀ",
  decay: "S' = α S + k vᵀ,  α = e^g",
  gla: "S' = diag(α) S + k vᵀ,  α = e^g (one per key channel)",
  delta: "S' = S + β k (v − Sᵀk)ᵀ",
  'gated-delta': "S̄ = α S;  S' = S̄ + β k (v − S̄ᵀk)ᵀ,  α = e^g",
};

/** The update formula of a rule: the spec's for a built-in, the rule file's own lines for a text rule. */
export function formulaOf(rule: Rule): string {
  if (isBuiltin(rule)) return BUILTIN_FORMULAS[rule.name];
  const checked = (rule as { checked?: { body: { line: number }[]; src: { lines: string[] } } }).checked;
  if (checked) return checked.body.map((s) => checked.src.lines[s.line - 1].replace(/#.*$/, '').trim()).join(';  ');
  return 'S_after = f(S_before; k, v, gates)';
}

const isBuiltin = (rule: Rule): boolean => Object.hasOwn(BUILTIN_RULES, rule.name) && (BUILTIN_RULES as Record<string, Rule>)[rule.name] === rule;

const rows = (S: Float64Array, dk: number, dv: number): number[][] => Array.from({ length: dk }, (_, i) => Array.from(S.subarray(i * dv, (i + 1) * dv)));

/** Sᵀk for S [dk, dv]. */
function readAlong(S: Float64Array, k: Float64Array, dk: number, dv: number): Float64Array {
  const out = new Float64Array(dv);
  for (let i = 0; i < dk; i++) for (let j = 0; j < dv; j++) out[j] += S[i * dv + j] * k[i];
  return out;
}

/** k uᵀ as rows [dk][dv]. */
const outer = (k: Float64Array, u: ArrayLike<number>, dv: number): number[][] => Array.from(k, (ki) => Array.from({ length: dv }, (_, j) => ki * u[j]));

/**
 * The intermediates of one step of a built-in rule from the state before it (S is not changed);
 * empty for a rule written as math, whose lines the formula shows instead.
 */
export function explainStep(rule: Rule, S: Float64Array, x: TokenInputs, { dk, dv }: Dims): StepPart[] {
  if (!isBuiltin(rule)) return [];
  const k = x.k as Float64Array;
  const v = x.v as Float64Array;
  const parts: StepPart[] = [];
  let Sbar = S;
  if (rule.name === 'decay' || rule.name === 'gated-delta') {
    const alpha = Math.exp(x.g as number);
    Sbar = S.map((s) => alpha * s);
    parts.push({ name: 'α', about: 'decay α = e^g', value: alpha }, { name: 'S̄', about: 'decayed state S̄ = α S', value: rows(Sbar, dk, dv) });
  } else if (rule.name === 'gla') {
    const alpha = Array.from(x.g as Float64Array, Math.exp);
    Sbar = S.map((s, idx) => alpha[Math.floor(idx / dv)] * s);
    parts.push({ name: 'α', about: 'decay per key channel α = e^g', value: alpha }, { name: 'S̄', about: 'decayed state S̄ = diag(α) S', value: rows(Sbar, dk, dv) });
  }
  if (rule.name === 'delta' || rule.name === 'gated-delta') {
    const beta = x.beta as number;
    const prediction = readAlong(Sbar, k, dk, dv);
    const error = v.map((vj, j) => vj - prediction[j]);
    const u = error.map((e) => beta * e);
    parts.push(
      { name: 'prediction', about: `what the memory recalls for k: ${rule.name === 'delta' ? 'Sᵀk' : 'S̄ᵀk'}`, value: Array.from(prediction) },
      { name: 'error', about: 'v − prediction', value: Array.from(error) },
      { name: 'u', about: 'the correction written: β · error', value: Array.from(u) },
      { name: 'write', about: 'k uᵀ, added to the (decayed) state', value: outer(k, u, dv) },
    );
  } else parts.push({ name: 'write', about: 'k vᵀ, added to the (decayed) state', value: outer(k, v, dv) });
  return parts;
}
