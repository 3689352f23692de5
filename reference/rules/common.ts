/** Small pieces every built-in rule shares: the read-out and the checks of a whole-sequence call. */
import { ConfigError, ShapeError } from '../errors.js';
import type { Dims, Rule } from '../types.js';
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
