/**
 * Campaigns over several machines (docs/campaigns.md): `--shard i/n` for `check` and `fuzz`, the
 * case files a failure writes and `--replay` reads, and `momlab report merge a.json b.json ...`,
 * which combines the `--json` reports of the shards of one campaign into one table.
 *
 * A shard is defined by its seed: shard i of n runs every (property, rule) job of the command with
 * seed shardSeed(base, i), distinct for distinct i, so shards draw different case streams and a
 * shard's failure replays with that seed alone. Merging sums the cases, keeps the worst error
 * ratio, max abs and tolerance and every failure; it refuses reports of another command, base
 * seed, sizes or shard count, a shard given twice, and rule files of different contents.
 */
import { getRule } from '../../reference/rules/index.js';
import { ConfigError, FormatError } from '../../reference/errors.js';
import { decodeCase, parseCaseFile, type CaseFile, type Failure } from '../../properties/runner.js';
import type { Outcome, RuleTarget } from '../../properties/types.js';
import { readRegular, sha256 } from '../io/files.js';
import { parseArgs } from './args.js';
import type { CliContext } from './context.js';
import type { CheckRow } from './check.js';

export const usage = `usage: momlab report merge a.json b.json ... [--json]

Combines the --json reports of the shards of one campaign (momlab check|fuzz --shard i/n --json)
into one table: cases summed, the worst error ratio and max abs kept, every failure listed.
Refused: reports of different commands, base seeds, sizes or shard counts, a shard given twice,
rule files that differ (docs/campaigns.md). Exit 0 when every row passed, 1 otherwise.`;

/** The largest report or case file read (a case holds every array of a case in full). */
const MAX_JSON_BYTES = 512 * 2 ** 20;

// ---------------------------------------------------------------------------------------------
// Shards

export interface Shard {
  index: number;
  count: number;
}

/** `i/n` with 1 <= i <= n <= 65536; absent: the whole campaign (1/1). */
export function parseShard(value: unknown, command: string): Shard {
  if (value === undefined) return { index: 1, count: 1 };
  const m = /^(\d{1,5})\/(\d{1,5})$/.exec(String(value));
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!(index >= 1 && count >= 1 && index <= count && count <= 65536))
    throw new ConfigError(`momlab ${command}: --shard must be i/n with 1 <= i <= n <= 65536 (e.g. 2/8), got '${String(value)}'`);
  return { index, count };
}

/**
 * The seed of shard `index`: the base seed itself for an unsharded run, otherwise
 * (base + index · 0x1E3779B1) mod 2^31 — an odd step, so distinct indices (< 2^31) give distinct
 * seeds, all non-negative so that a replay command prints them as a plain --seed N.
 */
export function shardSeed(base: number, s: Shard): number {
  if (s.count === 1) return base;
  const m = 2 ** 31;
  return (((base % m) + m + Number((BigInt(s.index) * 0x1e3779b1n) % BigInt(m))) % m) | 0;
}

// ---------------------------------------------------------------------------------------------
// Case files (--replay)

export interface LoadedCase {
  meta: CaseFile;
  case: unknown;
  /** the rule file's text, checked against the SHA-256 recorded */
  ruleText: string | null;
}

/** The rule file as a case file records it: its path and the SHA-256 of its bytes. */
export async function ruleFileRecord(path: string): Promise<{ record: { path: string; sha256: string }; text: string }> {
  const bytes = await readRegular(path, 1 << 20, 'rule file');
  return { record: { path, sha256: sha256(bytes) }, text: bytes.toString('utf8') };
}

/** Reads a case file for `command`, refusing one written by the other command or whose rule file changed. */
export async function loadCase(file: string, command: 'check' | 'fuzz'): Promise<LoadedCase> {
  const meta = parseCaseFile((await readRegular(file, MAX_JSON_BYTES, 'case file')).toString('utf8'), `case file '${file}'`);
  if (meta.command !== command) throw new ConfigError(`momlab ${command}: '${file}' was written by momlab ${meta.command}; replay it with momlab ${meta.command} --replay ${file}`);
  let ruleText: string | null = null;
  if (meta.ruleFile) {
    const now = await ruleFileRecord(meta.ruleFile.path);
    if (now.record.sha256 !== meta.ruleFile.sha256)
      throw new ConfigError(
        `momlab ${command}: rule file '${meta.ruleFile.path}' has changed since '${file}' was written (sha256 ${meta.ruleFile.sha256.slice(0, 12)}…, now ${now.record.sha256.slice(0, 12)}…): replaying it would not rerun that case`,
      );
    ruleText = now.text;
  }
  return { meta, case: decodeCase(meta.case, `case file '${file}'`), ruleText };
}

/** The target for the layer pseudo-rule, as `check` builds it (the layer properties build their own layer). */
export const layerTarget = (name: string): RuleTarget => ({ name, ref: getRule('gated-delta') });

/** Runs the property's check on the decoded case (no fast-check) and prints the outcome; exit 0 when it holds. */
export async function replayCase(loaded: LoadedCase, run: () => Promise<Outcome> | Outcome, cli: CliContext, json: boolean): Promise<number> {
  const { meta } = loaded;
  let out: Outcome;
  try {
    out = await run();
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    out = { ok: false, errRatio: NaN, maxAbs: NaN, tolerance: 0, message: e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e) };
  }
  if (json) {
    const num = (x: number) => (Number.isNaN(x) ? null : x);
    cli.stdout.write(`${JSON.stringify({ property: meta.property, rule: meta.rule, seed: meta.seed, path: meta.path, passed: out.ok, errRatio: num(out.errRatio), maxAbs: num(out.maxAbs), tolerance: out.tolerance, message: out.message ?? null }, null, 2)}\n`);
  } else {
    cli.stdout.write(`replayed '${meta.property}' on ${meta.rule} (recorded with seed ${meta.seed}, sizes ${meta.sizes}): ${out.ok ? 'holds' : 'FAILS'}\n`);
    cli.stdout.write(`  err ratio ${out.errRatio}, max abs ${out.maxAbs}, tolerance ${out.tolerance || 'exact'}\n`);
    cli.stdout.write(out.ok ? `  (recorded failure: ${meta.message})\n` : `  ${out.message ?? 'property does not hold'}\n`);
  }
  return out.ok ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// Reports and merging

/** One (property, rule) row of a campaign report: a check row, with the failures of every shard. */
export interface MergedRow extends Omit<CheckRow, 'failure'> {
  failures: (Failure & { shard: number })[];
}

/** What every shard report of one campaign shares, and which shards it covers. */
export interface CampaignHeader {
  command: 'check' | 'fuzz';
  baseSeed: number;
  sizes: string;
  shardCount: number;
  shards: number[];
  ruleFiles: { path: string; sha256: string }[];
}

interface Report extends CampaignHeader {
  rows: MergedRow[];
  devices: string[];
}

type Json = Record<string, unknown>;

/** A check or fuzz --json report (or a merged one) as a header and rows. */
function readReport(j: Json, where: string): Report {
  const bad = (what: string) => new FormatError(`${where}: ${what} (expected the --json output of momlab check, fuzz or report merge)`);
  if (j.command !== 'check' && j.command !== 'fuzz') throw bad("no 'command'");
  if (!Number.isInteger(j.baseSeed) || typeof j.sizes !== 'string' || !Number.isInteger(j.shardCount) || !Array.isArray(j.shards) || !Array.isArray(j.ruleFiles)) throw bad('no campaign header (baseSeed, sizes, shardCount, shards, ruleFiles)');
  const shard = (j.shards as number[])[0];
  const failuresOf = (r: Json): MergedRow['failures'] => (Array.isArray(r.failures) ? (r.failures as MergedRow['failures']) : r.failure ? [{ ...(r.failure as Failure), shard }] : []);
  let rows: MergedRow[];
  if (Array.isArray(j.rows)) {
    rows = (j.rows as Json[]).map((r) => ({
      property: String(r.property),
      rule: String(r.rule),
      cases: Number(r.cases),
      worstErrRatio: r.worstErrRatio as number | null,
      worstMaxAbs: r.worstMaxAbs as number | null,
      tolerance: Number(r.tolerance),
      passed: r.passed === true,
      interrupted: r.interrupted === true,
      failures: failuresOf(r),
    }));
  } else if (Array.isArray(j.entries)) {
    // momlab fuzz: one entry per property; `ok` is "behaved as expected" (an expected failure included)
    rows = (j.entries as Json[]).map((e) => {
      const rep = e.report as Json & { perRule: Json[] };
      const s = rep.perRule[0] ?? {};
      return {
        property: String(rep.property),
        rule: String(s.rule ?? j.rule),
        cases: Number(rep.cases),
        worstErrRatio: (s.worstErrRatio as number | null | undefined) ?? 0,
        worstMaxAbs: (s.worstMaxAbs as number | null | undefined) ?? 0,
        tolerance: Number(s.tolerance ?? 0),
        passed: e.ok === true,
        interrupted: rep.interrupted === true,
        failures: rep.failure && !e.expectFail ? [{ ...(rep.failure as Failure), shard }] : [],
      };
    });
  } else throw bad("no 'rows' or 'entries'");
  if (rows.some((r) => !Number.isInteger(r.cases) || r.cases < 0)) throw bad('a row without a case count');
  const devices = Array.isArray(j.devices) ? (j.devices as string[]) : [String(j.device ?? 'no GPU')];
  return { command: j.command, baseSeed: j.baseSeed as number, sizes: j.sizes, shardCount: j.shardCount as number, shards: j.shards as number[], ruleFiles: j.ruleFiles as Report['ruleFiles'], rows, devices };
}

// JSON has no NaN: a row's worst is null when a case measured NaN, and null is the worst value.
const worst = (a: number | null, b: number | null) => (a === null || b === null ? null : Math.max(a, b));

/** Combines the reports of the shards of one campaign; refuses mixtures (see the file comment). */
export function mergeReports(reports: Report[], names: string[]): Report {
  const [first] = reports;
  const seen = new Map<number, string>();
  reports.forEach((r, i) => {
    const differ = (what: string, a: unknown, b: unknown) =>
      new ConfigError(`momlab report: '${names[i]}' is from another campaign than '${names[0]}': ${what} ${JSON.stringify(b)}, not ${JSON.stringify(a)}`);
    if (r.command !== first.command) throw differ('command', first.command, r.command);
    if (r.baseSeed !== first.baseSeed) throw differ('base seed', first.baseSeed, r.baseSeed);
    if (r.sizes !== first.sizes) throw differ('sizes', first.sizes, r.sizes);
    if (r.shardCount !== first.shardCount) throw differ('shard count', first.shardCount, r.shardCount);
    const files = (x: Report) => JSON.stringify([...x.ruleFiles].sort((a, b) => a.path.localeCompare(b.path)));
    if (files(r) !== files(first)) throw differ('rule files', JSON.parse(files(first)), JSON.parse(files(r)));
    for (const s of r.shards) {
      if (seen.has(s)) throw new ConfigError(`momlab report: shard ${s}/${r.shardCount} is in both '${seen.get(s)}' and '${names[i]}' (its cases would count twice)`);
      seen.set(s, names[i]);
    }
  });
  const rows = new Map<string, MergedRow>();
  for (const r of reports)
    for (const row of r.rows) {
      const key = `${row.property}\u0000${row.rule}`;
      const m = rows.get(key);
      if (!m) rows.set(key, { ...row, failures: [...row.failures] });
      else {
        m.cases += row.cases;
        m.worstErrRatio = worst(m.worstErrRatio, row.worstErrRatio);
        m.worstMaxAbs = worst(m.worstMaxAbs, row.worstMaxAbs);
        m.tolerance = Math.max(m.tolerance, row.tolerance);
        m.passed &&= row.passed;
        m.interrupted ||= row.interrupted;
        m.failures.push(...row.failures);
      }
    }
  return { ...first, shards: [...seen.keys()].sort((a, b) => a - b), rows: [...rows.values()], devices: [...new Set(reports.flatMap((r) => r.devices))] };
}

export async function run(argv: string[], cli: CliContext): Promise<number> {
  const { flags, positional } = parseArgs(argv, { json: 'boolean' }, 'report', 1000);
  const [sub, ...files] = positional;
  if (sub !== 'merge') throw new ConfigError(`momlab report: expected 'merge' and report files (momlab report merge a.json b.json ...), got ${sub === undefined ? 'nothing' : `'${sub}'`}`);
  if (files.length === 0) throw new ConfigError('momlab report merge: give at least one --json report of momlab check or fuzz');
  const reports: Report[] = [];
  for (const f of files) {
    const text = (await readRegular(f, MAX_JSON_BYTES, 'report')).toString('utf8');
    let j: Json;
    try {
      j = JSON.parse(text) as Json;
    } catch (e) {
      throw new FormatError(`report '${f}' is not JSON: ${(e as Error).message}`);
    }
    reports.push(readReport(j, `report '${f}'`));
  }
  const m = mergeReports(reports, files);
  const passed = m.rows.every((r) => r.passed);
  if (flags.json) {
    cli.stdout.write(`${JSON.stringify({ ...m, passed }, null, 2)}\n`);
    return passed ? 0 : 1;
  }
  const { formatTable } = await import('./check.js');
  const missing = Array.from({ length: m.shardCount }, (_, i) => i + 1).filter((s) => !m.shards.includes(s));
  cli.stdout.write(`momlab ${m.command}, base seed ${m.baseSeed}, sizes ${m.sizes}: shards ${m.shards.join(', ')} of ${m.shardCount}${missing.length ? ` (missing ${missing.join(', ')})` : ''}, on ${m.devices.join('; ')}\n\n`);
  cli.stdout.write(`${formatTable(m.rows)}\n`);
  const failures = m.rows.flatMap((r) => r.failures.map((f) => ({ r, f })));
  for (const { r, f } of failures) cli.stdout.write(`\n${r.property} ${r.rule} (shard ${f.shard}): ${f.message}\n  replay: ${f.file ? `--replay ${f.file} (on that machine), or ` : ''}${f.replay}\n`);
  cli.stdout.write(passed ? `\nall ${m.rows.length} passed\n` : `\n${m.rows.filter((r) => !r.passed).length} of ${m.rows.length} failed\n`);
  return passed ? 0 : 1;
}
