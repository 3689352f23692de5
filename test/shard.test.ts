/**
 * Campaigns beyond one machine (issue 16 §8): `--shard i/n` runs a reproducible part of the seed
 * space (shard i's seed derived from the base seed and i), `--json` reports carry a campaign
 * header, and `momlab report merge` sums the cases, keeps the worst errors and every failure, and
 * refuses reports that do not belong to one campaign.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseShard, shardSeed } from '../src/cli/report.js';

function momlab(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/momlab.js', ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Row {
  property: string;
  rule: string;
  cases: number;
  worstErrRatio: number | null;
  passed: boolean;
}
interface Report {
  command: string;
  baseSeed: number;
  seed: number;
  shardCount: number;
  shards: number[];
  rows: Row[];
}

const dir = mkdtempSync(join(tmpdir(), 'momlab-shard-'));
/** A short reference-only check (no GPU) as a shard, its --json report saved to a file. */
function shard(spec: string, extra: string[] = []): { file: string; rep: Report } {
  const r = momlab('check', '--rules', 'linear,delta', '--property', 'chunked-equals-recurrent,routing-invariants', '--runs', '6', '--seed', '77', '--shard', spec, '--json', ...extra);
  expect(r.status, r.stderr).toBe(0);
  const file = join(dir, `${spec.replace('/', 'of')}${extra.join('')}.json`);
  writeFileSync(file, r.stdout);
  return { file, rep: JSON.parse(r.stdout) as Report };
}

describe('shards', () => {
  it('shard seeds are distinct per index, reproducible, non-negative, and the base seed when unsharded', () => {
    for (const base of [0, 77, -5, 2 ** 31 - 1, -(2 ** 31)]) {
      const seeds = Array.from({ length: 64 }, (_, i) => shardSeed(base, { index: i + 1, count: 64 }));
      expect(new Set(seeds).size).toBe(64);
      expect(seeds.every((s) => Number.isInteger(s) && s >= 0 && s < 2 ** 31)).toBe(true);
      expect(shardSeed(base, { index: 3, count: 64 })).toBe(seeds[2]);
      expect(shardSeed(base, { index: 1, count: 1 })).toBe(base);
    }
  });

  it('two shards draw different cases; merge sums the cases and keeps the worst, as its table shows', () => {
    const a = shard('1/2');
    const b = shard('2/2');
    expect(a.rep).toMatchObject({ command: 'check', baseSeed: 77, shardCount: 2, shards: [1] });
    expect(b.rep.shards).toEqual([2]);
    expect(a.rep.seed).not.toBe(b.rep.seed);
    // the same shard again is the same run
    expect(shard('1/2', ['--no-grad']).rep.rows).toEqual(a.rep.rows);
    const ratios = (r: Report) => r.rows.map((x) => x.worstErrRatio);
    expect(ratios(a.rep)).not.toEqual(ratios(b.rep));

    const m = momlab('report', 'merge', a.file, b.file, '--json');
    expect(m.status, m.stderr).toBe(0);
    const merged = JSON.parse(m.stdout) as Report & { passed: boolean };
    expect(merged).toMatchObject({ command: 'check', baseSeed: 77, shardCount: 2, shards: [1, 2], passed: true });
    expect(merged.rows.map((r) => `${r.property}/${r.rule}`)).toEqual(a.rep.rows.map((r) => `${r.property}/${r.rule}`));
    merged.rows.forEach((r, i) => {
      expect(r.cases).toBe(a.rep.rows[i].cases + b.rep.rows[i].cases);
      expect(r.worstErrRatio).toBe(Math.max(a.rep.rows[i].worstErrRatio!, b.rep.rows[i].worstErrRatio!));
    });
    // the table: one line per row with the summed cases and the worst ratio
    const t = momlab('report', 'merge', a.file, b.file);
    expect(t.status, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/^momlab check, base seed 77, sizes small: shards 1, 2 of 2, on /);
    for (const r of merged.rows) {
      const worst = r.worstErrRatio === 0 ? '0' : r.worstErrRatio!.toExponential(2);
      expect(t.stdout).toMatch(new RegExp(`^${r.property}\\s+${r.rule}\\s+${r.cases}\\s+${worst.replace('+', '\\+')}\\s.*pass$`, 'm'));
    }
    expect(t.stdout).toMatch(/all 3 passed/);
    // one shard alone: the missing one is named
    expect(momlab('report', 'merge', a.file).stdout).toMatch(/shards 1 of 2 \(missing 2\)/);
  });

  it('merge refuses reports of another campaign, a shard given twice, and files that are not reports', () => {
    const a = shard('1/2');
    const twice = momlab('report', 'merge', a.file, a.file);
    expect(twice.status).toBe(2);
    expect(twice.stderr.trim()).toBe(`momlab report: shard 1/2 is in both '${a.file}' and '${a.file}' (its cases would count twice)`);
    const r = momlab('check', '--rules', 'linear', '--property', 'routing-invariants', '--runs', '2', '--seed', '78', '--shard', '2/2', '--json');
    const otherSeed = join(dir, 'seed78.json');
    writeFileSync(otherSeed, r.stdout);
    const seeds = momlab('report', 'merge', a.file, otherSeed);
    expect(seeds.status).toBe(2);
    expect(seeds.stderr).toMatch(/is from another campaign than .*: base seed 78, not 77/);
    const sizes = join(dir, 'medium.json');
    writeFileSync(sizes, JSON.stringify({ ...(JSON.parse(r.stdout) as Report), baseSeed: 77, sizes: 'medium' }));
    expect(momlab('report', 'merge', a.file, sizes).stderr).toMatch(/sizes "medium", not "small"/);
    const count = join(dir, 'count.json');
    writeFileSync(count, JSON.stringify({ ...a.rep, shardCount: 3, shards: [2] }));
    expect(momlab('report', 'merge', a.file, count).stderr).toMatch(/shard count 3, not 2/);
    const junk = join(dir, 'junk.json');
    writeFileSync(junk, '{"rows": []}');
    expect(momlab('report', 'merge', junk).stderr).toMatch(/no 'command'/);
    expect(momlab('report', 'merge').stderr).toMatch(/give at least one --json report/);
    expect(momlab('report', 'split', a.file).stderr).toMatch(/expected 'merge'/);
  });

  it('bad --shard values are refused with one line, exit 2', () => {
    for (const bad of ['0/2', '3/2', '1/0', '2', 'a/b', '1/2/3', '-1/2', '1/99999', ''])
      expect(() => parseShard(bad, 'check')).toThrow(`momlab check: --shard must be i/n with 1 <= i <= n <= 65536 (e.g. 2/8), got '${bad}'`);
    expect(parseShard('3/8', 'check')).toEqual({ index: 3, count: 8 });
    for (const [cmd, bad] of [[['check'], '0/2'], [['fuzz', 'rules/linear.rule'], '2/1']] as const) {
      const r = momlab(...cmd, `--shard=${bad}`, '--runs', '1');
      expect(r.status).toBe(2);
      expect(r.stderr.trim()).toBe(`momlab ${cmd[0]}: --shard must be i/n with 1 <= i <= n <= 65536 (e.g. 2/8), got '${bad}'`);
    }
    expect(momlab('check', '--shard', '1/2', '--seed', '1', '--path', '0', '--property', 'routing-invariants', '--rules', 'linear').stderr).toMatch(/--path replays one case of one seed/);
  });
});
