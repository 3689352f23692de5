/**
 * `momlab bench --rule <name|file>`: the speed of one rule, built-in or written as math — the float64
 * reference's token steps per second on one core, and the GPU forward (router, gather, the rule's
 * kernels, mix) in every mode its kernels offer, at one small shape that a software driver runs in
 * seconds. The standard bench (bench/run.ts) covers the built-in gated-delta at fixed shapes.
 */
import { getGpu } from '../gpu/device.js';
import { ForwardPlan } from '../gpu/mom.js';
import { tokenInputs } from '../reference/mom.js';
import { sampleCoreInputs } from '../reference/sample.js';
import type { CoreConfig } from '../reference/types.js';
import type { RuleTarget } from '../properties/types.js';
import { GpuTimer, median } from './timer.js';

export interface RuleBenchRow {
  case: string;
  figure: string;
}

/** Reference steps per second (wall clock and per CPU-second) at dk = dv = d over n tokens, median of `repeats`. */
function referenceRate(t: RuleTarget, d: number, n: number, repeats: number): { wall: number; cpu: number } {
  const cfg: CoreConfig = { B: 1, T: n, H: 1, E: 1, topk: 1, dk: d, dv: d, shared: false };
  const mem = sampleCoreInputs(t.ref, cfg, 1).memories[0];
  const xs = Array.from({ length: n }, (_, i) => tokenInputs(t.ref, mem, cfg, 0, i, 0));
  const run = () => {
    const S = new Float64Array(d * d);
    for (const x of xs) t.ref.step(S, x, cfg);
  };
  run(); // warm-up: let the JIT optimise the step
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    run();
    const seconds = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    wall.push(n / seconds);
    cpu.push(n / ((c.user + c.system) / 1e6));
  }
  return { wall: median(wall), cpu: median(cpu) };
}

export async function benchRule(t: RuleTarget, opts: { repeats?: number } = {}): Promise<RuleBenchRow[]> {
  const repeats = opts.repeats ?? 3;
  const fmt = (v: number) => Math.round(v).toLocaleString('en-US');
  const rows: RuleBenchRow[] = [];
  const d = 64;
  const ref = referenceRate(t, d, 1000, repeats);
  rows.push({ case: `${t.name} reference, dk = dv = ${d}`, figure: `${fmt(ref.wall)} token-head steps/s (per CPU-second ${fmt(ref.cpu)})` });
  if (!t.gpu) return rows;
  const ctx = await getGpu();
  const timer = new GpuTimer(ctx);
  const cfg: CoreConfig = { B: 1, T: 256, H: 2, E: 4, topk: 2, dk: 32, dv: 32, shared: true };
  const x = sampleCoreInputs(t.ref, cfg, 1);
  for (const mode of t.gpu.modes) {
    const plan = await ForwardPlan.create(ctx, t.gpu, cfg, mode === 'chunk' ? { mode, chunk: 64 } : { mode });
    try {
      plan.write(x);
      const r = await timer.settledMedian((enc) => plan.encode(enc), repeats, 2);
      const shape = `B ${cfg.B} T ${cfg.T} H ${cfg.H} E ${cfg.E} top-${cfg.topk} dk ${cfg.dk} dv ${cfg.dv}`;
      rows.push({ case: `${t.name} GPU forward ${mode}${mode === 'chunk' ? ' (C = 64)' : ''}, ${shape}`, figure: `${r.ms.toPrecision(3)} ms (median of ${r.repeats.length}, ${timer.kind}) on ${ctx.adapterInfo}` });
    } finally {
      plan.destroy();
    }
  }
  return rows;
}
