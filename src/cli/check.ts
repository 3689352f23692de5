/**
 * `momlab check`: the property suite (properties/) against the available GPU — every property
 * for every selected rule — with a progress bar on stderr, then a table (property × rule:
 * cases, worst error ratio, pass/fail) on stdout. Exit 0 only when everything passes.
 *
 * Every (property, rule) pair runs with the same seed, so a failure replays with
 *   npx momlab check --property P --rules R --sizes S --seed N --path X
 * and its whole shrunk case is written to a file in --failures DIR, which
 *   npx momlab check --replay FILE
 * runs again on its own. --shard i/n runs shard i of a campaign (src/cli/report.ts).
 *
 * `layer` is a pseudo-rule in --rules (included in `all`): the fla-compatible layer (docs/spec.md §6, 7;
 * its rule is gated-delta) with the layer properties of properties/layer.ts, one row each. The
 * layer draws its own sizes (LAYER_SIZES: small), whatever --sizes says.
 */
import { getGpu, type GpuContext } from '../../gpu/device.js';
import { ConfigError } from '../../reference/errors.js';
import { RULE_NAMES, isRuleName } from '../../reference/rules/index.js';
import { SIZES, type SizeName } from '../../properties/arbitraries.js';
import { GPU_PROPERTIES } from '../../properties/gpu.js';
import { gpuLayerProperty, layerDecodeProperty, layerMixingProperty } from '../../properties/layer.js';
import { REFERENCE_PROPERTIES } from '../../properties/reference.js';
import { defaultReplay, formatFailure, runProperty, type CaseHeader, type PropertyReport } from '../../properties/runner.js';
import { gpuStaysFinite } from '../../properties/gpu-finite.js';
import { GRADIENT_PROPERTIES } from '../../properties/gradients.js';
import { stateBounded } from '../../properties/state-bounded.js';
import type { Property, RuleTarget } from '../../properties/types.js';
import { isRuleFile, resolveRule, textTarget } from '../rules.js';
import { parseArgs, seedFlag } from './args.js';
import { checkMemory, coreBytes, processContext, type CliContext, type Sink } from './context.js';
import { layerTarget, loadCase, parseShard, replayCase, ruleFileRecord, shardSeed } from './report.js';

const RULE_PROPERTIES = [...REFERENCE_PROPERTIES, stateBounded, ...GRADIENT_PROPERTIES, ...GPU_PROPERTIES, gpuStaysFinite] as Property<never>[];
const LAYER_PROPERTIES = [layerDecodeProperty, layerMixingProperty, gpuLayerProperty] as Property<never>[];
const ALL_PROPERTIES = [...RULE_PROPERTIES, ...LAYER_PROPERTIES];

/** The pseudo-rule naming the fla-compatible layer in --rules and in the table. */
export const LAYER = 'layer';

export const usage = `usage: momlab check [options]

Runs the property suite (reference and GPU) and prints a table: property × rule, cases run,
worst error ratio (docs/spec.md §9), pass/fail. Exits 0 only if every property holds.

options:
  --rules all|name,...   rules to check: built-in names, paths of .rule files, or ${LAYER}
                         (default all: ${RULE_NAMES.join(', ')}, ${LAYER})
                         '${LAYER}' is the fla-compatible layer (gated-delta, conv caches, norms):
                         the layer properties below; it draws its own small sizes
  --property id,...      only these properties (default all; see the list below)
  --grad                 the gradient properties at --sizes large too (they run by default at small, medium)
  --runs N               cases per property and rule (default 100; with --time: unbounded)
  --time SECONDS         time budget for the whole run, shared out between the properties
  --seed S               fast-check seed (default: random, printed)
  --path P               replay one failing case (with --seed, --property and --rules)
  --sizes small|medium|large   case sizes (default small: fits the software driver)
  --shard i/n            run shard i of n of a campaign: seeds derived from (--seed, i), so the
                         shards draw different cases; merge their --json reports with
                         momlab report merge (docs/campaigns.md)
  --failures DIR         where a failure's whole shrunk case is written (default momlab-failures)
  --replay FILE          run the case in FILE (written by a failure) again, alone
  --json                 print the table as JSON instead (a mergeable campaign report)

properties (per rule, and rule-independent ones shown as rule 'any'):
${RULE_PROPERTIES.map((p) => `  ${p.id.padEnd(30)} ${p.title}`).join('\n')}

properties of '${LAYER}':
${LAYER_PROPERTIES.map((p) => `  ${p.id.padEnd(30)} ${p.title}`).join('\n')}`;

export interface CheckRow {
  property: string;
  rule: string;
  cases: number;
  worstErrRatio: number | null;
  worstMaxAbs: number | null;
  tolerance: number;
  passed: boolean;
  interrupted: boolean;
  failure?: PropertyReport['failure'];
}


function pickRules(spec: string): string[] {
  const names = spec === 'all' ? [...RULE_NAMES, LAYER] : spec.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new ConfigError(`momlab check: --rules needs 'all', rule names or .rule files, got '${spec}'`);
  for (const n of names) {
    if (n !== LAYER && !isRuleName(n) && !isRuleFile(n))
      throw new ConfigError(`momlab check: unknown rule '${n}'; known rules: ${RULE_NAMES.join(', ')}, ${LAYER} (the fla-compatible layer), or the path of a .rule file`);
  }
  return names;
}

function pickProperties(spec: string | undefined, grad: boolean): Property<never>[] {
  if (!spec) return grad ? ALL_PROPERTIES : ALL_PROPERTIES.filter((p) => !GRADIENT_PROPERTIES.includes(p));
  const ids = spec.split(',').map((s) => s.trim());
  for (const id of ids)
    if (!ALL_PROPERTIES.some((p) => p.id === id))
      throw new ConfigError(`momlab check: unknown property '${id}'; known properties: ${ALL_PROPERTIES.map((p) => p.id).join(', ')}`);
  return ALL_PROPERTIES.filter((p) => ids.includes(p.id));
}

/** A progress bar on a terminal; one line per finished job otherwise (logs, CI). */
class Progress {
  private readonly tty: boolean;
  private last = 0;
  constructor(
    private readonly total: number,
    private readonly err: Sink,
  ) {
    this.tty = err.isTTY === true;
  }
  tick(done: number, label: string, cases: number): void {
    if (!this.tty) return;
    const now = Date.now();
    if (now - this.last < 100) return;
    this.last = now;
    const width = 30;
    const fill = Math.round((done / this.total) * width);
    this.err.write(`\r[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${this.total} ${label} (${cases} cases)`.padEnd(100).slice(0, 100));
  }
  finished(done: number, row: CheckRow, ms: number): void {
    const line = `[${done}/${this.total}] ${row.property} ${row.rule}: ${row.cases} cases, worst ${fmt(row.worstErrRatio)} ${row.passed ? 'ok' : 'FAIL'} (${(ms / 1000).toFixed(1)} s)`;
    this.err.write(this.tty ? `\r${line.padEnd(100)}\n` : `${line}\n`);
  }
}

const fmt = (x: number | null) => (x === null ? 'NaN' : x === 0 ? '0' : x.toExponential(2));

export function formatTable(rows: CheckRow[]): string {
  const head = ['property', 'rule', 'cases', 'worst err', 'max abs', 'tolerance', 'result'];
  const body = rows.map((r) => [
    r.property,
    r.rule,
    `${r.cases}${r.interrupted ? '*' : ''}`,
    fmt(r.worstErrRatio),
    fmt(r.worstMaxAbs),
    r.tolerance ? r.tolerance.toExponential(1) : 'exact',
    r.passed ? 'pass' : 'FAIL',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 2 && i <= 5 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  const out = [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)];
  if (rows.some((r) => r.interrupted)) out.push('* the time budget ran out before the requested number of cases');
  return out.join('\n');
}

/** The largest case a size preset draws (docs/spec.md §4 shapes), for the memory budget. */
export function sizesBytes(s: (typeof SIZES)[SizeName]): number {
  const max = (r: readonly number[]) => Math.max(...r);
  return coreBytes({ B: max(s.B), T: Math.max(max(s.T), max(s.seqLen)), H: max(s.H), E: max(s.topk) + max(s.extraE), dk: max(s.dk), dv: max([...s.dv, ...s.wide]) });
}

// fast-check's replay path: case indices separated by colons.
const PATH = /^\d+(:\d+)*$/;

export async function run(argv: string[], cli: CliContext = processContext()): Promise<number> {
  const { flags } = parseArgs(
    argv,
    { rules: 'string', property: 'string', grad: 'boolean', runs: 'number', time: 'number', seed: 'number', path: 'string', sizes: 'string', json: 'boolean', shard: 'string', failures: 'string', replay: 'string' },
    'check',
  );
  if (flags.replay !== undefined) return replay(String(flags.replay), flags, cli);
  const rules = pickRules(String(flags.rules ?? 'all'));
  const sizeName = String(flags.sizes ?? 'small');
  // Finite differences cost a few forwards per input group and case: by default at small and
  // medium sizes, at large only when asked for.
  const props = pickProperties(flags.property as string | undefined, flags.grad === true || sizeName !== 'large');
  if (!Object.hasOwn(SIZES, sizeName)) throw new ConfigError(`momlab check: --sizes must be one of ${Object.keys(SIZES).join(', ')}, got '${sizeName}'`);
  const sizes = SIZES[sizeName as SizeName];
  checkMemory(cli, 'check', `a case at sizes ${sizeName}`, sizesBytes(sizes));
  const timeS = flags.time as number | undefined;
  if (timeS !== undefined && !(timeS > 0)) throw new ConfigError(`momlab check: --time must be a positive number of seconds, got ${timeS}`);
  const runs = (flags.runs as number | undefined) ?? (timeS !== undefined ? 1e9 : 100);
  if (!Number.isInteger(runs) || runs < 1) throw new ConfigError(`momlab check: --runs must be a positive integer, got ${runs}`);
  const baseSeed = seedFlag(flags.seed, 'check');
  const shard = parseShard(flags.shard, 'check');
  const seed = shardSeed(baseSeed, shard);
  if (shard.count > 1 && flags.path !== undefined) throw new ConfigError('momlab check: --path replays one case of one seed: give the seed the failure printed, without --shard');
  const failures = String(flags.failures ?? 'momlab-failures');
  const path = flags.path as string | undefined;
  if (path !== undefined && !PATH.test(path)) throw new ConfigError(`momlab check: --path must be the path a failure printed (numbers separated by ':', e.g. 3:0:1), got '${path}'`);
  const json = flags.json === true;
  if (path !== undefined && (flags.seed === undefined || props.length !== 1 || (props[0].perRule && rules.length !== 1)))
    throw new ConfigError('momlab check: --path replays one failing case: give it with --seed, one --property and one rule in --rules (as the replay command printed)');

  const specs = rules.filter((n) => n !== LAYER);
  const targets = await Promise.all(specs.map((n) => resolveRule(n, 'check')));
  // a rule file's SHA-256, recorded in a case file so that a replay against another text is refused
  const ruleFiles = new Map<string, { path: string; sha256: string }>();
  for (const n of specs) if (!isRuleName(n)) ruleFiles.set(n, (await ruleFileRecord(n)).record);
  const jobs: { prop: Property<never>; targets: RuleTarget[]; rule?: string; spec: string }[] = [];
  for (const prop of props) {
    if (LAYER_PROPERTIES.includes(prop)) {
      // The layer properties build their own layer (gated-delta); the target only names the row.
      if (rules.includes(LAYER)) jobs.push({ prop, targets: [layerTarget(LAYER)], rule: LAYER, spec: LAYER });
    } else if (targets.length === 0) continue;
    else if (!prop.perRule) jobs.push({ prop, targets: targets.slice(0, 1), spec: specs[0] });
    else targets.forEach((t, i) => prop.applies(t) && jobs.push({ prop, targets: [t], spec: specs[i] }));
  }
  if (jobs.length === 0) throw new ConfigError(`momlab check: none of the properties ${props.map((p) => p.id).join(', ')} applies to ${rules.join(', ')} (the layer properties run on --rules ${LAYER} only)`);

  const ctx: GpuContext | undefined = jobs.some((j) => j.prop.needsGpu) ? await getGpu() : undefined;
  if (!json) cli.stderr.write(`momlab check: ${jobs.length} property × rule pairs, sizes ${sizeName}, seed ${seed}${shard.count > 1 ? ` (shard ${shard.index}/${shard.count} of base seed ${baseSeed})` : ''}${ctx ? `, on ${ctx.adapterInfo}` : ''}\n`);

  const progress = new Progress(jobs.length, cli.stderr);
  const deadline = timeS !== undefined ? Date.now() + timeS * 1000 : undefined;
  const rows: CheckRow[] = [];
  for (const [i, job] of jobs.entries()) {
    const label = `${job.prop.id} ${job.rule ?? (job.prop.perRule ? job.targets[0].name : 'any')}`;
    // Share what is left of the budget equally between the jobs still to run.
    const timeLimitMs = deadline !== undefined ? Math.max(1, (deadline - Date.now()) / (jobs.length - i)) : undefined;
    let cases = 0;
    const t0 = Date.now();
    const rep = await runProperty(job.prop, job.targets, { ctx }, {
      sizes,
      sizeName,
      numRuns: runs,
      seed,
      path,
      timeLimitMs,
      onCase: () => progress.tick(i, label, ++cases),
      // the replay command names the rule as the user did: a rule file by its path
      replay: (seed, p) => defaultReplay(job.prop.id, sizeName)(seed, p, job.spec),
      failures: { dir: failures, header: { command: 'check', ruleSpec: job.spec, ruleFile: ruleFiles.get(job.spec) ?? null, sizes: sizeName } satisfies CaseHeader },
    });
    const s = rep.perRule[0];
    const row: CheckRow = {
      property: rep.property,
      rule: job.rule ?? s?.rule ?? job.targets[0].name,
      cases: rep.cases,
      worstErrRatio: s && !Number.isNaN(s.worstErrRatio) ? s.worstErrRatio : s ? null : 0,
      worstMaxAbs: s && !Number.isNaN(s.worstMaxAbs) ? s.worstMaxAbs : s ? null : 0,
      tolerance: s?.tolerance ?? 0,
      passed: rep.passed,
      // a time-limited run with fewer cases than asked (with --time and no --runs that is the point)
      interrupted: rep.interrupted && flags.runs !== undefined,
      failure: rep.failure,
    };
    rows.push(row);
    progress.finished(i + 1, row, Date.now() - t0);
    if (!rep.passed && !json) cli.stderr.write(`${formatFailure(rep)}\n`);
  }

  const passed = rows.every((r) => r.passed);
  if (json) {
    // the campaign header makes the report mergeable (momlab report merge)
    const header = { command: 'check', baseSeed, sizes: sizeName, shardCount: shard.count, shards: [shard.index], ruleFiles: [...ruleFiles.values()] };
    cli.stdout.write(`${JSON.stringify({ ...header, seed, runs: flags.runs ?? null, time: timeS ?? null, device: ctx?.adapterInfo ?? null, passed, rows }, null, 2)}\n`);
  } else {
    cli.stdout.write(`${formatTable(rows)}\n`);
    const failed = rows.filter((r) => !r.passed);
    if (failed.length) {
      cli.stdout.write(`\n${failed.length} of ${rows.length} failed. Replay a failure with the command printed for it:\n`);
      for (const r of failed) cli.stdout.write(`  ${r.property} ${r.rule}: ${r.failure?.file ? `npx momlab check --replay ${r.failure.file}` : (r.failure?.replay ?? '(no counterexample)')}\n`);
    } else cli.stdout.write(`\nall ${rows.length} passed (seed ${seed})\n`);
  }
  return passed ? 0 : 1;
}

/** --replay FILE: the property's check on the case recorded in FILE, for the rule it names. */
async function replay(file: string, flags: Record<string, unknown>, cli: CliContext): Promise<number> {
  const extra = Object.keys(flags).filter((f) => f !== 'replay' && f !== 'json');
  if (extra.length) throw new ConfigError(`momlab check: --replay runs the case in the file as recorded; it takes no --${extra[0]}`);
  const loaded = await loadCase(file, 'check');
  const { meta } = loaded;
  const prop = ALL_PROPERTIES.find((p) => p.id === meta.property);
  if (!prop) throw new ConfigError(`momlab check: '${file}' names property '${meta.property}', which this momlab does not have`);
  // a rule file's text as loadCase checked it against the recorded SHA-256
  const target = meta.ruleSpec === LAYER ? layerTarget(LAYER) : loaded.ruleText !== null ? textTarget(loaded.ruleText, meta.ruleSpec) : await resolveRule(meta.ruleSpec, 'check');
  const ctx = prop.needsGpu ? await getGpu() : undefined;
  return replayCase(loaded, () => prop.check({ ctx }, target, loaded.case as never), cli, flags.json === true);
}
