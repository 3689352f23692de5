/**
 * What the two WGSL renderers of the rule language share (kernels/from-text.ts for the forward,
 * kernels/backward.ts for the backward): dimension and index names, float literals, the hoisting of
 * deep subexpressions into `let` lines, and the element loop. Everything here writes only momlab's
 * own identifiers and numbers it formats (reference/rule-lang/emit.ts).
 */
import type { Dim } from '../../reference/rule-lang/check.js';
import { formatNumber, genId } from '../../reference/rule-lang/emit.js';
import type { Idx } from '../../reference/rule-lang/lower.js';

export const dimW = (d: Dim) => (d === 1 ? '1u' : d === 'dk' ? 'DK' : 'DV');
export const idxW = (i: Idx): string => (i === '0' ? '0u' : i);

/** A WGSL f32 literal from a parsed number (emit.ts formats it; `.0` marks an integer as a float). */
export function num(v: number): string {
  const s = formatNumber(v);
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

/**
 * Subexpressions deeper than this become `let` lines before their statement: Tint's parser stops
 * at a fixed recursion depth, which a long sum in a rule would otherwise reach.
 */
export const MAX_NEST = 16;

/** Collects the `let` lines of hoisted subexpressions; their names are generated (`a0`, `a1`, ...). */
export interface Hoist {
  lines: string[];
  count: number;
}

/** A rendered subexpression, hoisted into a `let` line once it is MAX_NEST deep. */
export function hoisted(r: { text: string; depth: number }, h: Hoist): { text: string; depth: number } {
  if (r.depth < MAX_NEST) return r;
  const id = genId('a', h.count++);
  h.lines.push(`let ${id} = ${r.text};`);
  return { text: id, depth: 0 };
}

/** Lines computing `make`'s statement: the hoisted subexpressions it needs, then the statement. */
export function statement(h: Hoist, make: () => string): string[] {
  const start = h.lines.length;
  const last = make();
  return [...h.lines.splice(start), last];
}

/** The rule language's elementwise functions that WGSL lacks. */
export const RULE_FUNCTIONS = `fn rl_sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn rl_softplus(x: f32) -> f32 { return max(x, 0.0) + log(1.0 + exp(-abs(x))); }
fn rl_silu(x: f32) -> f32 { return x / (1.0 + exp(-x)); }`;

/** A loop over the r×c elements of a step, strided across the workgroup. */
export function forElements(r: Dim, c: Dim, body: string[]): string[] {
  return [`for (var e = lid; e < ${dimW(r)} * ${dimW(c)}; e += WG) {`, `  let i = e / ${dimW(c)};`, `  let j = e % ${dimW(c)};`, ...body.map((l) => `  ${l}`), `}`];
}
