/**
 * `momlab bench`: the same as `npm run bench` (bench/run.ts: the reference bench and the GPU
 * bench at small sizes, one table; `--write` appends it to docs/perf.md). The large shapes of
 * docs/perf.md run with `npx tsx bench/gpu.ts --sizes large` on a big GPU.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const usage = `usage: momlab bench [--write]

Measures the float64 reference (gated-delta steps per second, one core) and the GPU forward and
decode at small sizes on the available adapter, and prints one table with date and device.
  --write   append the rows to docs/perf.md`;

export async function run(argv: string[]): Promise<number> {
  const tsx = createRequire(import.meta.url).resolve('tsx/cli');
  const entry = fileURLToPath(new URL('../../bench/run.ts', import.meta.url));
  const r = spawnSync(process.execPath, [tsx, entry, ...argv], { stdio: 'inherit' });
  return r.status ?? 1;
}
