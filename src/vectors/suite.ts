/**
 * `momlab vectors --suite edge`: the hard cases for a MoM kernel, one core problem each
 * (docs/vectors.md lists them): exact router ties, a memory idle in one sequence, a memory that gets
 * every token, T at chunk edges, k = E, no shared memory, a long sequence, variable lengths, and
 * every bounded input (decay, β) at both ends of its declared range.
 */
import { mulberry32 } from '../../reference/sample.js';
import type { CoreConfig, CoreInputs, InputDecl, Rule } from '../../reference/types.js';
import { intervalSpan } from '../../reference/types.js';
import { rangeText, type CoreSpec } from './core.js';

export interface EdgeCase {
  name: string;
  what: string;
  spec: CoreSpec;
  /** changes the sampled inputs before they are rounded to float32 */
  edit?: (x: CoreInputs, cfg: CoreConfig) => void;
}

export interface Suite {
  cases: EdgeCase[];
  skipped: { name: string; reason: string }[];
}

/** A logit no softmax top-k of logits in (-2, 2) ever picks (or always picks, negated). */
const FAR = 8;

/** Values at one end of a declared range, or why that end has none (i: position, r: uniform in [0, 1)). */
function edgeValue(d: InputDecl, side: 'lo' | 'hi'): ((i: number, r: number) => number) | string {
  const tiny = (r: number) => 2 ** -17 * (0.5 + r);
  if (d.range === 'logdecay') return side === 'lo' ? (_i, r) => -20 - 10 * r : (i, r) => (i % 2 ? -(2 ** -20) * r : 0);
  if (d.range === 'unit') return side === 'lo' ? (_i, r) => tiny(r) : (_i, r) => 1 - tiny(r);
  if (typeof d.range !== 'object') return `'${d.name}' has no bounded range`;
  const bound = side === 'lo' ? d.range.lo : d.range.hi;
  if (!Number.isFinite(bound)) return `'${d.name}' is unbounded ${side === 'lo' ? 'below' : 'above'}`;
  const [lo, hi] = intervalSpan(d.range);
  const inward = side === 'lo' ? 1 : -1;
  const open = side === 'lo' ? d.range.loOpen : d.range.hiOpen;
  // a closed end is hit exactly on every other value; an open one is approached within 2^-17 of the span
  return (i, r) => (!open && i % 2 === 0 ? bound : bound + inward * (hi - lo) * tiny(r));
}

/** The edge suite for `rule`, its cases built on `base` (sizes, mix, initial state, grad). */
export function edgeSuite(rule: Rule, base: CoreSpec, seed: number): Suite {
  const cfg = base.cfg;
  const cases: EdgeCase[] = [];
  const skipped: Suite['skipped'] = [];
  const add = (name: string, what: string, c: Partial<CoreConfig>, edit?: EdgeCase['edit'], lengths?: number[]) =>
    cases.push({ name, what, spec: { ...base, cfg: { ...cfg, ...c }, lengths }, edit });
  const perToken = (x: CoreInputs, c: CoreConfig, f: (z: Float64Array, b: number, t: number) => void) => {
    for (let b = 0; b < c.B; b++) for (let t = 0; t < c.T; t++) f(x.logits.subarray((b * c.T + t) * c.E, (b * c.T + t + 1) * c.E), b, t);
  };

  add('tied-logits', 'router logits rounded to integers, so that many are exactly equal (ties go to the lower index); the first token of each sequence has all E equal', {}, (x, c) =>
    perToken(x, c, (z, _b, t) => z.forEach((v, e) => (z[e] = t === 0 ? 0.5 : Math.round(v)))));
  if (cfg.topk < cfg.E)
    add('idle-memory', `memory ${cfg.E - 1} gets no token in sequence 0 (its state stays at the initial state) and tokens as usual in sequence 1`, { B: 2 }, (x, c) =>
      perToken(x, c, (z, b) => b === 0 && (z[c.E - 1] = -FAR)));
  else skipped.push({ name: 'idle-memory', reason: 'k = E: every memory gets every token' });
  add('busy-memory', 'memory 0 gets every token of every sequence', {}, (x, c) => perToken(x, c, (z) => (z[0] = FAR)));
  for (const T of [1, 63, 64, 65, 127, 129]) add(`t${T}`, `T = ${T}${T > 1 ? ' (around the chunk sizes 64 and 128)' : ''}`, { T });
  add('topk-all', 'k = E: every memory gets every token', { topk: cfg.E });
  if (cfg.shared) add('no-shared', 'no shared memory', { shared: false });
  else skipped.push({ name: 'no-shared', reason: 'the base configuration has no shared memory already' });
  add('long-t4096', 'T = 4096 with small sizes (B = 1, H = 1, E = 2, k = 1, dk = dv = 16)', { B: 1, T: 4096, H: 1, E: 2, topk: 1, dk: 16, dv: 16 });
  const lengths = [5, 64, 1, 37];
  add('varlen', `variable-length batch: B = 1, sequences of ${lengths.join(', ')} tokens concatenated (cu_seqlens), each from its own initial state`, { B: 1, T: lengths.reduce((a, b) => a + b, 0) }, undefined, lengths);

  for (const d of rule.inputs)
    for (const side of ['lo', 'hi'] as const) {
      const name = `${d.name}-near-${side}`;
      const value = edgeValue(d, side);
      if (typeof value === 'string') {
        if (typeof d.range === 'object' || d.range === 'logdecay' || d.range === 'unit') skipped.push({ name, reason: value });
        continue;
      }
      add(name, `every memory's '${d.name}' at the ${side === 'lo' ? 'low' : 'high'} end of its range (${rangeText(d.range)})`, {}, (x) => {
        const rand = mulberry32(seed ^ 0xed9e);
        for (const m of [...x.memories, ...(x.shared ? [x.shared] : [])]) m[d.name].forEach((_, i, a) => (a[i] = value(i, rand())));
      });
    }
  return { cases, skipped };
}
