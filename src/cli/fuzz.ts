/**
 * `momlab fuzz <file.rule>`: the property suite on a rule written as math (docs/spec.md §8). The rule is
 * compiled twice from its text (reference JS loops, GPU WGSL kernel) and checked:
 *   gpu-equals-reference, mix-before-equals-after (expected to FAIL when the read-out is not
 *   linear in the state: then the report says so) and its GPU form (linear read-outs only: the
 *   GPU pipeline refuses mix 'before' otherwise), decode-equals-forward and its GPU form,
 *   state-size-constant, state-finite, state-bounded, gpu-finite — the properties of a built-in rule that apply to a
 *   token-by-token kernel (docs/spec.md §8).
 * The target is named `text:<rule>` so that the shared GPU properties hold it to the tolerances
 * measured for compiled text rules (properties/tolerances.ts), not to a built-in's.
 * Prints a table and, on failure, the shrunk counterexample with a replay command, and writes the
 * whole case to a file in --failures DIR (`momlab fuzz --replay FILE` runs it again). Exit code 0
 * when every property behaved as expected, 1 otherwise. --shard i/n as for check (src/cli/report.ts).
 */
import { getGpu } from '../../gpu/device.js';
import { gpuRuleFromChecked, type TextGpuRuleOptions } from '../../gpu/kernels/from-text.js';
import { ConfigError } from '../../reference/errors.js';
import { ruleFromChecked } from '../../reference/rules/from-text.js';
import { SIZES, type SizeName } from '../../properties/arbitraries.js';
import { gpuDecodeEqualsForward, refDecodeEqualsForward } from '../../properties/decode.js';
import { gpuMixBeforeEqualsAfter, refMixBeforeEqualsAfter } from '../../properties/mix-before-after.js';
import { formatFailure, runProperty, type PropertyReport } from '../../properties/runner.js';
import { refStateSizeConstant } from '../../properties/state-size.js';
import { TEXT_RULE_PREFIX } from '../../properties/tolerances.js';
import type { Property, RuleTarget } from '../../properties/types.js';
import { stateStaysFinite, textGpuEqualsReference } from '../../properties/rule-file.js';
import { stateBounded } from '../../properties/state-bounded.js';
import { gpuGradientEqualsReference, gradientBounded, gradientFiniteDifferences } from '../../properties/gradients.js';
import { gpuStaysFinite } from '../../properties/gpu-finite.js';
import { checkRuleText } from '../../reference/rule-lang/check.js';
import { parseArgs, seedFlag } from './args.js';
import { checkMemory, processContext, type CliContext } from './context.js';
import { sha256 } from '../io/files.js';
import { readRegular } from '../io/files.js';
import { MAX_RULE_BYTES } from '../rules.js';
import { sizesBytes } from './check.js';
import { loadCase, parseShard, replayCase, shardSeed, type Shard } from './report.js';


export const usage = `usage: momlab fuzz <file.rule> [--runs N] [--time SECONDS] [--seed S] [--path P] [--property ID] [--sizes S] [--shard i/n] [--failures DIR] [--json] [--emit-wgsl]
       momlab fuzz --replay FILE [--json]

Runs the property suite on a rule written as math (docs/rule-language.md):
  gpu-equals-reference      the WGSL kernel compiled from the text equals the float64 reference
  mix-before-equals-after   mixing before and after the read-out agree (expected to FAIL when
                            the read-out is not linear in the state; the report says so)
  gpu-mix-before-equals-after
                            the same on the GPU, both paths on the device and against the
                            reference (linear read-outs only: n/a otherwise)
  decode-equals-forward     prefill + steps equals one pass
  gpu-decode-equals-forward the same on the GPU (GpuMomState), and the state's byte size does
                            not depend on T
  state-size-constant       the state size does not depend on T
  state-finite              the state stays finite over long sequences, inputs in their ranges
  state-bounded             the state does not grow exponentially (fits ln‖S_t‖; reports the
                            growth rate and where float32 would overflow)
  gpu-finite                the GPU's outputs stay finite wherever the float64 reference stays
                            within float32 range
  gradient-finite-differences
                            the backward derived from the rule's text equals central finite
                            differences of the float64 forward
  gradient-bounded          the reverse state ‖dS‖ does not grow exponentially going back in time
  gpu-gradient-equals-reference
                            the GPU backward kernel (generated from the same text) equals the
                            float64 derived backward
  (the three gradient properties run at sizes small and medium; at large only with --property)

  --runs N        cases per property (default 25)
  --time S        time budget per property in seconds (default 60)
  --seed S        fast-check seed (default: random); with --path, replays one case
  --property ID   run only this property
  --sizes S       case sizes: small (default), medium, large (properties/arbitraries.ts)
  --shard i/n     shard i of n of a campaign: seeds derived from (--seed, i); merge the --json
                  reports with momlab report merge (docs/campaigns.md)
  --failures DIR  where a failure's whole shrunk case is written (default momlab-failures)
  --replay FILE   run the case in FILE (written by a failure) again, alone; the rule file it
                  names must be unchanged
  --json          print the report as JSON (a mergeable campaign report)
  --emit-wgsl     print the generated WGSL kernel (H=1, dk=8, dv=8) and exit`;

export interface FuzzOptions {
  runs?: number;
  timeSeconds?: number;
  seed?: number;
  path?: string;
  property?: string;
  sizes?: SizeName;
  shard?: Shard;
  /** where a failure's whole case is written; none when absent */
  failures?: string;
  /** TEST-ONLY: fault injection into the GPU compile (gpu/kernels/from-text.ts) */
  tamper?: TextGpuRuleOptions['tamper'];
}

export interface FuzzEntry {
  report: PropertyReport;
  /** true when the property is expected to fail (mixing with a non-linear read-out) */
  expectFail: boolean;
  /** the property does not apply to this rule (GPU mixing with a non-linear read-out) */
  skipped: boolean;
  /** the property behaved as expected */
  ok: boolean;
}

export interface FuzzResult {
  /** the campaign header (momlab report merge) */
  command: 'fuzz';
  baseSeed: number;
  sizes: SizeName;
  shardCount: number;
  shards: number[];
  ruleFiles: { path: string; sha256: string }[];
  device: string | null;
  rule: string;
  file: string;
  readLinear: boolean;
  notes: string[];
  entries: FuzzEntry[];
  ok: boolean;
}

// For a non-linear read-out the mixing property runs anyway (applies to every rule): its failure
// is the expected outcome and the proof that the suite can tell.
const mixAlways: Property<unknown> = { ...(refMixBeforeEqualsAfter as Property<unknown>), applies: () => true };

const PROPERTIES: Property<unknown>[] = [
  textGpuEqualsReference,
  mixAlways,
  gpuMixBeforeEqualsAfter,
  refDecodeEqualsForward,
  gpuDecodeEqualsForward,
  refStateSizeConstant,
  stateStaysFinite,
  stateBounded,
  gpuStaysFinite,
  gradientFiniteDifferences,
  gradientBounded,
  gpuGradientEqualsReference,
] as Property<unknown>[];
// Finite differences cost a few forwards per input group and case, and the GPU backward holds a
// token's arrays in workgroup memory: at sizes large they run only when named with --property.
const GRADIENT_IDS = new Set([gradientFiniteDifferences.id, gradientBounded.id, gpuGradientEqualsReference.id]);
export const FUZZ_PROPERTY_IDS = PROPERTIES.map((p) => p.id);

export async function fuzzRule(text: string, file: string, opts: FuzzOptions = {}): Promise<FuzzResult> {
  const checked = checkRuleText(text, { file });
  const ref = ruleFromChecked(checked);
  const gpu = gpuRuleFromChecked(checked, { tamper: opts.tamper });
  const target: RuleTarget = { name: `${TEXT_RULE_PREFIX}${checked.name}`, ref, gpu };
  const props = opts.property
    ? PROPERTIES.filter((p) => p.id === opts.property)
    : PROPERTIES.filter((p) => (opts.sizes ?? 'small') !== 'large' || !GRADIENT_IDS.has(p.id));
  if (props.length === 0) throw new ConfigError(`momlab fuzz: unknown property '${opts.property}'; known: ${FUZZ_PROPERTY_IDS.join(', ')}`);
  const ctx = props.some((p) => p.needsGpu) ? await getGpu() : undefined;
  // one seed for every property, non-negative so that the replay command parses
  const baseSeed = seedFlag(opts.seed, 'fuzz');
  const shard = opts.shard ?? { index: 1, count: 1 };
  const seed = shardSeed(baseSeed, shard);
  const sizeName = opts.sizes ?? 'small';
  const ruleFile = { path: file, sha256: sha256(text) };
  const entries: FuzzEntry[] = [];
  for (const prop of props) {
    const report = await runProperty(prop, [target], { ctx }, {
      sizes: SIZES[sizeName],
      sizeName,
      numRuns: opts.runs ?? 25,
      seed,
      path: opts.path,
      timeLimitMs: (opts.timeSeconds ?? 60) * 1000,
      replay: (seed, path) => `npx momlab fuzz ${file} --property ${prop.id}${sizeName === 'small' ? '' : ` --sizes ${sizeName}`} --seed ${seed} --path ${path}`,
      failures: opts.failures === undefined ? undefined : { dir: opts.failures, header: { command: 'fuzz', ruleSpec: file, ruleFile, sizes: sizeName } },
    });
    const expectFail = prop.id === mixAlways.id && !checked.readLinear;
    entries.push({ report, expectFail, skipped: report.skipped, ok: report.skipped || report.passed !== expectFail });
  }
  return { command: 'fuzz', baseSeed, sizes: sizeName, shardCount: shard.count, shards: [shard.index], ruleFiles: [ruleFile], device: ctx?.adapterInfo ?? null, rule: checked.name, file, readLinear: checked.readLinear, notes: checked.notes, entries, ok: entries.every((e) => e.ok) };
}

function table(r: FuzzResult): string {
  const rows = r.entries.map(({ report: p, expectFail, skipped, ok }) => {
    const s = p.perRule[0];
    const result = skipped ? 'n/a (read-out not linear)' : p.passed ? (expectFail ? 'PASSED (expected to fail!)' : 'pass') : expectFail ? 'FAIL (expected)' : 'FAIL';
    return [p.property, result, String(p.cases) + (p.interrupted ? ' (time)' : ''), s ? s.worstErrRatio.toExponential(2) : '-', skipped ? '-' : s && s.tolerance ? s.tolerance.toExponential(0) : 'exact', ok ? '' : '<--'];
  });
  const head = ['property', 'result', 'cases', 'worst err', 'tol', ''];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((x) => x[i].length)));
  const line = (x: string[]) => x.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd();
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}

export async function run(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { flags, positional } = parseArgs(
    argv,
    { runs: 'number', time: 'number', seed: 'number', path: 'string', property: 'string', json: 'boolean', 'emit-wgsl': 'boolean', sizes: 'string', shard: 'string', failures: 'string', replay: 'string' },
    'fuzz',
    1,
  );
  if (flags.replay !== undefined) return replay(String(flags.replay), flags, positional, ctx);
  if (positional.length !== 1) throw new ConfigError('momlab fuzz: expected one rule file (momlab fuzz <file.rule>; see momlab fuzz --help)');
  const runs = flags.runs as number | undefined;
  if (runs !== undefined && !(Number.isInteger(runs) && runs >= 1)) throw new ConfigError(`momlab fuzz: --runs must be a positive integer, got ${runs}`);
  const time = flags.time as number | undefined;
  if (time !== undefined && !(time > 0)) throw new ConfigError(`momlab fuzz: --time must be a positive number of seconds, got ${time}`);
  const sizes = String(flags.sizes ?? 'small');
  if (!Object.hasOwn(SIZES, sizes)) throw new ConfigError(`momlab fuzz: --sizes must be one of ${Object.keys(SIZES).join(', ')}, got '${sizes}'`);
  checkMemory(ctx, 'fuzz', `a case at sizes ${sizes}`, sizesBytes(SIZES[sizes as SizeName]));
  const shard = parseShard(flags.shard, 'fuzz');
  if (shard.count > 1 && flags.path !== undefined) throw new ConfigError('momlab fuzz: --path replays one case of one seed: give the seed the failure printed, without --shard');
  const file = positional[0];
  const text = (await readRegular(file, MAX_RULE_BYTES, 'rule file')).toString('utf8');
  const log = (line: string) => ctx.stdout.write(line + '\n');
  if (flags['emit-wgsl']) {
    const gpu = gpuRuleFromChecked(checkRuleText(text, { file }));
    log(gpu.wgsl({ H: 1, dk: 8, dv: 8, withHistory: false }));
    return 0;
  }
  const res = await fuzzRule(text, file, {
    runs,
    timeSeconds: time,
    seed: seedFlag(flags.seed, 'fuzz'),
    path: flags.path as string | undefined,
    property: flags.property as string | undefined,
    sizes: sizes as SizeName,
    shard,
    failures: String(flags.failures ?? 'momlab-failures'),
  });
  if (flags.json) {
    log(JSON.stringify(res, null, 2));
    return res.ok ? 0 : 1;
  }
  log(`momlab fuzz: rule '${res.rule}' (${file}), read-out ${res.readLinear ? 'linear' : 'NOT linear'} in the state`);
  for (const n of res.notes) log(n);
  log(`\n${table(res)}\n`);
  for (const e of res.entries) {
    if (e.report.passed) {
      if (e.expectFail) log(`property '${e.report.property}' was expected to fail (non-linear read-out) but held on every case: the cases drawn did not tell; run more (--runs)`);
      continue;
    }
    if (e.expectFail) log(`expected failure (the read-out is not linear in the state, so mixing before and after differ):`);
    log(formatFailure(e.report) + '\n');
  }
  log(res.ok ? 'all properties behaved as expected' : 'FAILED: see above');
  return res.ok ? 0 : 1;
}

/** --replay FILE: the property's check on the case recorded in FILE, for the rule file it names (unchanged). */
async function replay(file: string, flags: Record<string, unknown>, positional: string[], ctx: CliContext): Promise<number> {
  const extra = Object.keys(flags).filter((f) => f !== 'replay' && f !== 'json');
  if (extra.length || positional.length) throw new ConfigError(`momlab fuzz: --replay runs the case in the file for the rule file it records; it takes no ${extra.length ? `--${extra[0]}` : 'rule file argument'}`);
  const loaded = await loadCase(file, 'fuzz');
  const { meta } = loaded;
  const prop = PROPERTIES.find((p) => p.id === meta.property);
  if (!prop) throw new ConfigError(`momlab fuzz: '${file}' names property '${meta.property}', which this momlab does not have`);
  const checked = checkRuleText(loaded.ruleText ?? '', { file: meta.ruleSpec });
  const target: RuleTarget = { name: `${TEXT_RULE_PREFIX}${checked.name}`, ref: ruleFromChecked(checked), gpu: gpuRuleFromChecked(checked) };
  const env = { ctx: prop.needsGpu ? await getGpu() : undefined };
  return replayCase(loaded, () => prop.check(env, target, loaded.case), ctx, flags.json === true);
}
