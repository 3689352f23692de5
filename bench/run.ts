/**
 * `npm run bench`: the reference bench (quick) and the GPU bench at small sizes on whatever
 * adapter exists (the software driver included), printed as one table with date, device and
 * command. `--write` appends the rows to docs/perf.md (section "Runs of `npm run bench`"),
 * keeping the earlier ones so that progress shows. The large shapes run on a big GPU
 * with `bench/gpu.ts --sizes large` (docs/perf.md, "How to reproduce the H200 figures").
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../reference/errors.js';
import { benchReference } from './reference.js';
import { benchGpu, type Sizes } from './gpu.js';

const SECTION = '## Runs of `npm run bench`';
const HEADER = ['| date (UTC) | device | command | case | figure |', '|---|---|---|---|---|'];
// Only a source checkout has it here: the compiled copy in an installed package sits one folder deeper.
const PERF_MD = fileURLToPath(new URL('../docs/perf.md', import.meta.url));

export async function runBench(opts: { sizes: Sizes; write: boolean; command: string }): Promise<void> {
  if (opts.write && !existsSync(PERF_MD)) throw new ConfigError('momlab bench: --write appends to docs/perf.md of a momlab source checkout; run it there');
  const { command } = opts;
  const rows: string[][] = [];
  const date = new Date().toISOString().slice(0, 16).replace('T', ' ');
  const fmt = (v: number) => Math.round(v).toLocaleString('en-US');

  for (const r of await benchReference({ quick: true })) {
    rows.push([date, 'CPU, 1 core (Node)', command, r.case, `${fmt(r.value)} ${r.metric} (per CPU-second ${fmt(r.cpuValue ?? 0)})`]);
  }
  const gpu = await benchGpu({ sizes: opts.sizes, command, log: () => undefined });
  const dev = `${gpu.device} (${gpu.timing})`;
  if (gpu.ceilings) {
    rows.push([date, dev, command, `WGSL f32 matmul ${gpu.ceilings.matmul.n}³`, `${gpu.ceilings.matmul.ms.toPrecision(3)} ms, ${(gpu.ceilings.matmul.tflops * 1000).toPrecision(3)} GFLOP/s`]);
    rows.push([date, dev, command, `copy ${gpu.ceilings.copy.bytes / 2 ** 20} MiB`, `${(gpu.ceilings.copy.tbps * 1000).toPrecision(3)} GB/s`]);
  }
  for (const r of gpu.forward) {
    const s = r.shape;
    const detail = r.mode === 'chunk' ? `prepare ${r.prepareMs?.toPrecision(3)} + wu ${r.wuMs?.toPrecision(3)} + scan ${r.scanMs?.toPrecision(3)} + output ${r.outputMs?.toPrecision(3)}` : 'kernel';
    rows.push([date, dev, command, `forward ${r.mode}, B ${s.B} T ${s.T} H ${s.H} dk ${s.dk} dv ${s.dv}`, `${r.ms.toPrecision(3)} ms (median of ${r.repeats.length}); rule kernel ${r.ruleMs.toPrecision(3)} ms (${detail})`]);
  }
  if (gpu.decode) {
    const d = gpu.decode;
    rows.push([date, dev, command, `decode step, B ${d.shape.B} H ${d.shape.H} dk ${d.shape.dk}`, d.rows.map((x) => `${x.context} tokens: ${x.ms.toPrecision(3)} ms`).join('; ') + `; state ${d.stateBytes} B (formula ${d.formulaBytes} B)`]);
  }

  if (gpu.backward) {
    const b = gpu.backward;
    const s = b.shape;
    rows.push([date, dev, command, `backward gated-delta (from its rule file, token by token), B ${s.B} T ${s.T} H ${s.H} dk ${s.dk} dv ${s.dv}`, b.skipped ?? `kernel ${b.backwardMs?.toPrecision(3)} ms; forward kernel from the same text ${b.forwardMs?.toPrecision(3)} ms`]);
  }
  const lines = rows.map((r) => `| ${r.join(' | ')} |`);
  console.log([...HEADER, ...lines].join('\n'));
  if (opts.write) appendToPerf(lines);
}

function appendToPerf(lines: string[]): void {
  const doc = readFileSync(PERF_MD, 'utf8').split('\n');
  let at = doc.indexOf(SECTION);
  if (at < 0) {
    while (doc.length && doc[doc.length - 1] === '') doc.pop();
    doc.push('', SECTION, '', 'Appended by `npm run bench -- --write`: small sizes on whatever adapter the machine has (here usually the software driver, lavapipe, so the GPU figures measure the emulation, not a GPU).', '', ...HEADER, '');
    at = doc.indexOf(SECTION);
  }
  // the end of the section's table: the first non-table line after its header row
  let end = doc.indexOf(HEADER[0], at);
  while (end < doc.length && doc[end].startsWith('|')) end++;
  doc.splice(end, 0, ...lines);
  writeFileSync(PERF_MD, doc.join('\n'));
  console.log(`appended ${lines.length} rows to docs/perf.md`);
}
