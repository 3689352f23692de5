/**
 * `momlab trace`: one sequence (B = H = 1) through the reference, step by step, either for
 * people (aligned tables) or as JSON Lines (--json) for tools and notebooks.
 */
import { ConfigError } from '../../reference/errors.js';
import { scaleOf } from '../../reference/mom.js';
import { formulaOf, type StepPart } from '../../reference/explain.js';
import { sampleTokenwise } from '../../reference/sample.js';
import { traceSteps, type TraceEvent, type TraceShared } from '../../reference/trace.js';
import { resolveRule } from '../rules.js';
import type { CoreConfig } from '../../reference/types.js';
import { parseArgs } from './args.js';
import { checkMemory, coreBytes, processContext, type CliContext } from './context.js';

export const usage = `usage: momlab trace [options]

Runs one sequence (B = H = 1) of random inputs (seeded) through the float64 reference and
shows every token: router probabilities, the chosen memories and their weights, each active
memory's state before, the step's intermediates (for the delta rules: decayed state,
prediction, error, write) and the state after, the memories left unchanged, the per-memory
outputs and both read-outs (mix after / mix before), which agree for rules whose read-out is
linear in the state; a routing summary closes the run. Token t's inputs depend only on the
seed and t, so a longer trace keeps the tokens of a shorter one.

options:
  --rule NAME|FILE  linear, decay, gla, delta, gated-delta, or a .rule file   (default gated-delta)
  --memories E      routed memories                              (default 4)
  --topk K          memories per token, 1 <= K <= E              (default 2)
  --dk D, --dv D    key / value width                            (default 4, 4)
  --tokens T        sequence length                              (default 6)
  --seed S          seed of the sampled inputs                   (default 1)
  --scale X         query scale                                  (default dk^-1/2)
  --no-shared       without the always-on shared memory
  --json            JSON Lines: {"config": ...}, then one object per token`;

const SPEC = {
  rule: 'string',
  memories: 'number',
  topk: 'number',
  dk: 'number',
  dv: 'number',
  tokens: 'number',
  seed: 'number',
  scale: 'number',
  shared: 'boolean',
  json: 'boolean',
} as const;

function positiveInt(flags: Record<string, unknown>, name: string, fallback: number): number {
  const v = flags[name] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    throw new ConfigError(`momlab trace: --${name} must be a positive integer, got ${String(v)}`);
  return v;
}

/**
 * The events keep, per token and active memory, the state before and after and the vectors, as
 * JavaScript number arrays (16 bytes a value, with headroom), besides the sampled inputs.
 */
export function traceBytes(c: CoreConfig): number {
  const perMemory = 2 * c.dk * c.dv + 3 * c.dk + 2 * c.dv + 2;
  const perToken = (c.topk + 1) * perMemory + 3 * c.E + 3 * c.dv + c.dk;
  return coreBytes(c) + 16 * c.T * perToken;
}

export async function run(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { flags } = parseArgs(argv, SPEC, 'trace');
  const rule = (await resolveRule((flags.rule as string | undefined) ?? 'gated-delta', 'trace')).ref;
  const seed = flags.seed ?? 1;
  if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0) throw new ConfigError(`momlab trace: --seed must be a non-negative integer, got ${String(seed)}`);
  const cfg: CoreConfig = {
    B: 1,
    H: 1,
    T: positiveInt(flags, 'tokens', 6),
    E: positiveInt(flags, 'memories', 4),
    topk: positiveInt(flags, 'topk', 2),
    dk: positiveInt(flags, 'dk', 4),
    dv: positiveInt(flags, 'dv', 4),
    shared: (flags.shared as boolean | undefined) ?? true,
  };
  if (cfg.topk > cfg.E) throw new ConfigError(`momlab trace: --topk ${cfg.topk} is more than --memories ${cfg.E} (need 1 <= k <= E)`);
  if (flags.scale !== undefined) cfg.scale = flags.scale as number;
  const scale = scaleOf(cfg);
  checkMemory(ctx, 'trace', `a trace of ${cfg.T} tokens (${cfg.E} memories, dk ${cfg.dk}, dv ${cfg.dv})`, traceBytes(cfg));

  const x = sampleTokenwise(rule, cfg, seed);
  const formula = formulaOf(rule);
  const summary = new Routing(cfg.E);
  const write = (line: string) => ctx.stdout.write(line + '\n');
  if (flags.json) {
    const config = { rule: rule.name, formula, E: cfg.E, topk: cfg.topk, dk: cfg.dk, dv: cfg.dv, T: cfg.T, B: 1, H: 1, shared: cfg.shared, seed, scale };
    // Which numbers are scaled: q is printed as read (s·q); every other input as drawn.
    write(JSON.stringify({ config, scaled: { q: `the query as read, s·q with s = ${scale}` } }));
    for (const ev of traceSteps(rule, cfg, x)) {
      summary.add(ev);
      write(JSON.stringify(ev));
    }
    write(JSON.stringify({ routing: summary.json() }));
    return 0;
  }
  write(
    `momlab trace: rule ${rule.name}, ${cfg.E} memories, top-${cfg.topk}, shared memory ${cfg.shared ? 'on' : 'off'}, ` +
      `dk = ${cfg.dk}, dv = ${cfg.dv}, ${cfg.T} tokens, seed ${seed}, scale ${fmt(scale).trim()}`,
  );
  write(`each selected memory (and the shared one): ${formula};  output = S_afterᵀ (s·q)  (docs/spec.md §3, 4)`);
  for (const ev of traceSteps(rule, cfg, x)) {
    summary.add(ev);
    for (const line of describe(ev)) write(line);
  }
  for (const line of summary.lines(cfg.shared, cfg.T)) write(line);
  return 0;
}

/** How the router used each memory over the run. */
class Routing {
  private readonly tokens: number[][];
  private readonly weight: number[];
  constructor(E: number) {
    this.tokens = Array.from({ length: E }, () => []);
    this.weight = new Array(E).fill(0);
  }
  add(ev: TraceEvent): void {
    ev.selected.forEach((e, j) => {
      this.tokens[e].push(ev.t);
      this.weight[e] += ev.weights[j];
    });
  }
  json() {
    return this.tokens.map((t, e) => ({ memory: e, tokens: t, totalWeight: this.weight[e] }));
  }
  lines(shared: boolean, T: number): string[] {
    return [
      '',
      `── routing over ${T} tokens ${'─'.repeat(49)}`,
      ...this.tokens.map((t, e) =>
        t.length ? `  memory ${e}: ${t.length} token${t.length > 1 ? 's' : ''} (${t.join(', ')}), total weight ${fmt(this.weight[e]).trim()}` : `  memory ${e}: no token (its state never moved)`,
      ),
      ...(shared ? [`  shared memory: every token, weight 1`] : []),
    ];
  }
}

// ---- the human-readable form ----

const fmt = (v: number): string => (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-4) ? v.toExponential(2) : v.toFixed(4)).padStart(9);
const vec = (a: readonly number[]): string => `[${a.map(fmt).join('')} ]`;

/** Two matrices side by side with a label row. */
function sideBySide(left: number[][], right: number[][], labels: [string, string]): string[] {
  const rows = left.map((r, i) => [vec(r), vec(right[i])]);
  const width = Math.max(labels[0].length, ...rows.map(([l]) => l.length));
  return [`    ${labels[0].padEnd(width)}   ${labels[1]}`, ...rows.map(([l, r]) => `    ${l.padEnd(width)}   ${r}`)];
}

function gates(m: TraceShared): string {
  const parts: string[] = [];
  if (m.g !== null) parts.push(typeof m.g === 'number' ? `g ${fmt(m.g).trim()} (α = e^g = ${fmt(Math.exp(m.g)).trim()})` : `g ${vec(m.g)}`);
  if (m.beta !== null) parts.push(`β ${fmt(m.beta).trim()}`);
  for (const [n, v] of Object.entries(m.extra ?? {})) parts.push(`${n} ${typeof v === 'number' ? fmt(v).trim() : vec(v)}`);
  return parts.length ? '   ' + parts.join('   ') : '';
}

/** One intermediate of the step: a scalar or vector on one line, a matrix under its name. */
function stepLines(p: StepPart): string[] {
  const label = `${p.name} (${p.about})`;
  if (typeof p.value === 'number') return [`    ${label}: ${fmt(p.value).trim()}`];
  if (typeof p.value[0] === 'number') return [`    ${label}`, `             ${vec(p.value as number[])}`];
  return [`    ${label}`, ...(p.value as number[][]).map((r) => `             ${vec(r)}`)];
}

function memoryBlock(title: string, m: TraceShared): string[] {
  return [
    `  ${title}${gates(m)}`,
    ...(m.k ? [`    k      ${vec(m.k)}`] : []),
    ...(m.v ? [`    v      ${vec(m.v)}`] : []),
    ...m.steps.flatMap(stepLines),
    ...sideBySide(m.stateBefore, m.stateAfter, ['state before', 'state after']),
    `    output ${vec(m.output)}`,
  ];
}

function describe(ev: TraceEvent): string[] {
  const lines = [
    '',
    `── token ${ev.t} ${'─'.repeat(60)}`,
    `  router logits ${vec(ev.logits)}`,
    `  probs         ${vec(ev.probs)}`,
    `  selected      ${ev.selected.map((e, j) => `memory ${e} (p ${fmt(ev.probs[e]).trim()}, weight ${fmt(ev.weights[j]).trim()})`).join(', ')}`,
    `  q (scaled)    ${vec(ev.q)}`,
  ];
  ev.memories.forEach((m, j) => lines.push(...memoryBlock(`memory ${m.index}, weight ${fmt(ev.weights[j]).trim()}`, m)));
  if (ev.unchanged.length) lines.push(`  not selected: memor${ev.unchanged.length > 1 ? 'ies' : 'y'} ${ev.unchanged.join(', ')}: unchanged (no update, no decay)`);
  if (ev.shared) lines.push(...memoryBlock('shared memory, weight 1', ev.shared));
  const diff = Math.max(...ev.outputMixAfter.map((a, i) => Math.abs(a - ev.outputMixBefore[i])));
  lines.push(
    `  mixed output:  mix after (Σ w·output)         mix before (read of Σ w·S)`,
    ...ev.outputMixAfter.map((a, i) => `             ${fmt(a)}                      ${fmt(ev.outputMixBefore[i])}`),
    `  max |after − before| = ${diff.toExponential(2)}`,
  );
  return lines;
}
