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
 * Prints a table and, on failure, the shrunk counterexample with a replay command. Exit code 0
 * when every property behaved as expected, 1 otherwise.
 */
import { getGpu } from '../../gpu/device.js';
import { gpuRuleFromChecked, type TextGpuRuleOptions } from '../../gpu/kernels/from-text.js';
import { ConfigError } from '../../reference/errors.js';
import { ruleFromChecked } from '../../reference/rules/from-text.js';
import { SIZES } from '../../properties/arbitraries.js';
import { gpuDecodeEqualsForward, refDecodeEqualsForward } from '../../properties/decode.js';
import { gpuMixBeforeEqualsAfter, refMixBeforeEqualsAfter } from '../../properties/mix-before-after.js';
import { formatFailure, runProperty, type PropertyReport } from '../../properties/runner.js';
import { refStateSizeConstant } from '../../properties/state-size.js';
import { TEXT_RULE_PREFIX } from '../../properties/tolerances.js';
import type { Property, RuleTarget } from '../../properties/types.js';
import { stateStaysFinite, textGpuEqualsReference } from '../../properties/rule-file.js';
import { stateBounded } from '../../properties/state-bounded.js';
import { gpuStaysFinite } from '../../properties/gpu-finite.js';
import { checkRuleText } from '../../reference/rule-lang/check.js';
import { parseArgs, seedFlag } from './args.js';
import { processContext, type CliContext } from './context.js';
import { readRegular } from '../io/files.js';
import { MAX_RULE_BYTES } from '../rules.js';


export const usage = `usage: momlab fuzz <file.rule> [--runs N] [--time SECONDS] [--seed S] [--path P] [--property ID] [--json] [--emit-wgsl]

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

  --runs N        cases per property (default 25)
  --time S        time budget per property in seconds (default 60)
  --seed S        fast-check seed (default: random); with --path, replays one case
  --property ID   run only this property
  --json          print the report as JSON
  --emit-wgsl     print the generated WGSL kernel (H=1, dk=8, dv=8) and exit`;

export interface FuzzOptions {
  runs?: number;
  timeSeconds?: number;
  seed?: number;
  path?: string;
  property?: string;
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
] as Property<unknown>[];
export const FUZZ_PROPERTY_IDS = PROPERTIES.map((p) => p.id);

export async function fuzzRule(text: string, file: string, opts: FuzzOptions = {}): Promise<FuzzResult> {
  const checked = checkRuleText(text, { file });
  const ref = ruleFromChecked(checked);
  const gpu = gpuRuleFromChecked(checked, { tamper: opts.tamper });
  const target: RuleTarget = { name: `${TEXT_RULE_PREFIX}${checked.name}`, ref, gpu };
  const props = opts.property ? PROPERTIES.filter((p) => p.id === opts.property) : PROPERTIES;
  if (props.length === 0) throw new ConfigError(`momlab fuzz: unknown property '${opts.property}'; known: ${FUZZ_PROPERTY_IDS.join(', ')}`);
  const ctx = props.some((p) => p.needsGpu) ? await getGpu() : undefined;
  // one seed for every property, non-negative so that the replay command parses
  const seed = seedFlag(opts.seed, 'fuzz');
  const entries: FuzzEntry[] = [];
  for (const prop of props) {
    const report = await runProperty(prop, [target], { ctx }, {
      sizes: SIZES.small,
      sizeName: 'small',
      numRuns: opts.runs ?? 25,
      seed,
      path: opts.path,
      timeLimitMs: (opts.timeSeconds ?? 60) * 1000,
      replay: (seed, path) => `npx momlab fuzz ${file} --property ${prop.id} --seed ${seed} --path ${path}`,
    });
    const expectFail = prop.id === mixAlways.id && !checked.readLinear;
    entries.push({ report, expectFail, skipped: report.skipped, ok: report.skipped || report.passed !== expectFail });
  }
  return { rule: checked.name, file, readLinear: checked.readLinear, notes: checked.notes, entries, ok: entries.every((e) => e.ok) };
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
  const { flags, positional } = parseArgs(argv, { runs: 'number', time: 'number', seed: 'number', path: 'string', property: 'string', json: 'boolean', 'emit-wgsl': 'boolean' }, 'fuzz', 1);
  if (positional.length !== 1) throw new ConfigError('momlab fuzz: expected one rule file (momlab fuzz <file.rule>; see momlab fuzz --help)');
  const runs = flags.runs as number | undefined;
  if (runs !== undefined && !(Number.isInteger(runs) && runs >= 1)) throw new ConfigError(`momlab fuzz: --runs must be a positive integer, got ${runs}`);
  const time = flags.time as number | undefined;
  if (time !== undefined && !(time > 0)) throw new ConfigError(`momlab fuzz: --time must be a positive number of seconds, got ${time}`);
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
