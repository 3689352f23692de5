/** What every built-in rule shares: the read-out, the token-by-token loop and the checks of a whole-sequence call. */
import { ConfigError, ShapeError } from '../errors.js';
import type { Dims, Rule, TokenInputs } from '../types.js';
import { widthOf } from '../types.js';
import { checkArray } from '../validate.js';
import type { HeadSequence } from './types.js';

/** docs/spec.md §1: o = Sᵀ q, i.e. o[j] = Σ_i S[i, j] q[i]. */
export function readOut(S: Float64Array, q: Float64Array, dims: Dims, out: Float64Array): void {
  const { dk, dv } = dims;
  out.fill(0, 0, dv);
  for (let i = 0; i < dk; i++) {
    const qi = q[i];
    const row = i * dv;
    for (let j = 0; j < dv; j++) out[j] += S[row + j] * qi;
  }
}

/** docs/spec.md §5 works for any chunk size C >= 1; anything else is a configuration error. */
export function checkChunk(C: number): void {
  if (!Number.isInteger(C) || C < 1) throw new ConfigError(`chunk size must be an integer >= 1, got ${C}`);
}

/**
 * A HeadSequence and state S fit `rule`: sizes are integers (n may be 0), q, S and every
 * declared input have the right length and finite values, and there is no undeclared input.
 * O(n·(dk + dv)), small next to the O(n·dk·dv) of running the rule.
 */
export function checkSequence(rule: Rule, seq: HeadSequence, S: Float64Array): void {
  const { n, dk, dv } = seq;
  if (!Number.isInteger(n) || n < 0) throw new ShapeError(`sequence length n must be an integer >= 0, got ${String(n)}`);
  for (const [name, d] of [['dk', dk], ['dv', dv]] as const)
    if (!Number.isInteger(d) || d < 1) throw new ShapeError(`sequence ${name} must be a positive integer, got ${String(d)}`);
  checkArray(S, dk * dv, 'state S', `[dk, dv] = [${dk}, ${dv}]`);
  checkArray(seq.q, n * dk, 'sequence q', `[n, dk] = [${n}, ${dk}]`);
  const expected = rule.inputs.map((d) => d.name);
  for (const name of Object.keys(seq.inputs ?? {}))
    if (!expected.includes(name)) throw new ShapeError(`sequence has an extra input '${name}' (rule '${rule.name}' takes ${expected.join(', ')})`);
  for (const d of rule.inputs) {
    const w = widthOf(d.width, seq);
    if (seq.inputs?.[d.name] === undefined) throw new ShapeError(`sequence is missing input '${d.name}' (rule '${rule.name}' takes ${expected.join(', ')})`);
    checkArray(seq.inputs[d.name], n * w, `sequence input '${d.name}'`, `[n, ${d.width === 'scalar' ? 1 : d.width}] = [${n}, ${w}]`);
  }
}

/**
 * docs/spec.md §3 over one head's sequence, token by token through the rule's own step and read:
 * for t = 0..n-1, S <- f(S; x_t), o_t = read(S, q_t). Updates S in place; returns o [n*dv].
 */
export function stepThrough(rule: Rule, seq: HeadSequence, S: Float64Array): Float64Array {
  checkSequence(rule, seq, S);
  const { n, dk, dv } = seq;
  const o = new Float64Array(n * dv);
  for (let t = 0; t < n; t++) {
    const x: TokenInputs = {};
    for (const d of rule.inputs) {
      const w = widthOf(d.width, seq);
      x[d.name] = d.width === 'scalar' ? seq.inputs[d.name][t] : seq.inputs[d.name].subarray(t * w, (t + 1) * w);
    }
    rule.step(S, x, seq);
    rule.read(S, seq.q.subarray(t * dk, (t + 1) * dk), seq, o.subarray(t * dv, (t + 1) * dv));
  }
  return o;
}
