/**
 * Reference (CPU) benchmark: token-head steps per second of `gated-delta`'s recurrent path
 * (reference/rules/gated-delta.ts, `recurrent`) over one long sequence, on one core (JS is
 * single-threaded). One step = one token's update of one dk×dv state plus its read-out.
 *
 *   npx tsx bench/reference.ts [--quick]
 */
import { pathToFileURL } from 'node:url';
import { gatedDelta } from '../reference/rules/gated-delta.js';
import type { HeadSequence } from '../reference/rules/types.js';
import { mulberry32 } from '../reference/sample.js';

export interface Row {
  suite: string;
  case: string;
  metric: string;
  /** the median over the repeats */
  value: number;
  /** every repeat, in run order */
  repeats: number[];
  /**
   * The same per CPU-second of this process (process.cpuUsage) instead of per wall second: on a
   * machine shared with other work, what the loop would do with the core to itself (an estimate:
   * caches and memory bandwidth are still shared).
   */
  cpuValue?: number;
}

/** A gated-delta sequence of n tokens with unit keys, g in [-0.2, 0), β in (0.05, 0.95). */
function sequence(n: number, d: number, seed: number): HeadSequence {
  const rand = mulberry32(seed);
  const u = (lo: number, hi: number) => lo + (hi - lo) * rand();
  const k = Float64Array.from({ length: n * d }, () => u(-1, 1));
  for (let t = 0; t < n; t++) {
    let ss = 0;
    for (let i = 0; i < d; i++) ss += k[t * d + i] ** 2;
    for (let i = 0; i < d; i++) k[t * d + i] /= Math.sqrt(ss);
  }
  return {
    n, dk: d, dv: d,
    q: Float64Array.from({ length: n * d }, () => u(-1, 1) / Math.sqrt(d)),
    inputs: {
      k,
      v: Float64Array.from({ length: n * d }, () => u(-1, 1)),
      g: Float64Array.from({ length: n }, () => u(-0.2, -1e-3)),
      beta: Float64Array.from({ length: n }, () => u(0.05, 0.95)),
    },
  };
}

const median = (a: number[]): number => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export async function benchReference(opts: { quick?: boolean } = {}): Promise<Row[]> {
  const repeats = opts.quick ? 3 : 7;
  const rows: Row[] = [];
  for (const d of [64, 128]) {
    // ~0.2 s (full) per repeat at the target speed: long enough to swamp timer noise.
    const n = (opts.quick ? 2000 : 8000) * (64 / d) ** 2;
    const seq = sequence(n, d, 1);
    gatedDelta.recurrent(seq, new Float64Array(d * d)); // warm-up: let the JIT optimise the loop
    const rates: number[] = [];
    const cpuRates: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const S = new Float64Array(d * d);
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      gatedDelta.recurrent(seq, S);
      const seconds = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(c0);
      rates.push(n / seconds);
      cpuRates.push(n / ((cpu.user + cpu.system) / 1e6));
    }
    rows.push({ suite: 'reference', case: `gated-delta recurrent, dk = dv = ${d}`, metric: 'token-head steps/s', value: median(rates), repeats: rates, cpuValue: median(cpuRates) });
  }
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await benchReference({ quick: process.argv.includes('--quick') });
  for (const r of rows)
    console.log(
      `${r.case.padEnd(36)} ${Math.round(r.value).toLocaleString('en-US').padStart(9)} ${r.metric} (median of wall-clock repeats: ${r.repeats.map((x) => Math.round(x)).join(', ')}); ` +
        `per CPU-second: ${Math.round(r.cpuValue ?? 0).toLocaleString('en-US')}`,
    );
}
