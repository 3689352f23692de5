/**
 * Runs one property over one or several rules with fast-check and reports what a person needs:
 * cases run per rule, the worst error measured, and on failure the seed, the path, the shrunk
 * configuration and the command that replays exactly that case.
 * A property that ran no case has not passed: numRuns below 1 is refused, and a run that ends
 * with zero cases (time limit, every case discarded) is reported as a failure.
 */
import fc from 'fast-check';
import { ConfigError } from '../reference/errors.js';
import { summarize, type SizeRanges } from './arbitraries.js';
import type { Outcome, Property, PropertyEnv, RuleTarget } from './types.js';

export interface RunOptions {
  sizes: SizeRanges;
  /** the name of `sizes` (small, medium, large), for the replay command */
  sizeName?: string;
  numRuns: number;
  seed?: number;
  path?: string;
  /** stop drawing new cases after this long (a safety bound; shrinking is bounded too) */
  timeLimitMs?: number;
  /** how to replay, given the seed and path; default: the `momlab check` command */
  replay?: (seed: number, path: string, rules: string) => string;
  /** called after every case (progress bars) */
  onCase?: () => void;
}

export interface RuleStats {
  rule: string;
  cases: number;
  worstErrRatio: number;
  worstMaxAbs: number;
  /** the largest tolerance a case of this rule was held to */
  tolerance: number;
}

export interface Failure {
  rule: string;
  seed: number;
  path: string;
  message: string;
  /** the shrunk case, arrays summarised */
  shrunk: unknown;
  replay: string;
}

export interface PropertyReport {
  property: string;
  title: string;
  /** cases run before the end (or the first failure), over all rules */
  cases: number;
  perRule: RuleStats[];
  passed: boolean;
  /** fewer cases than asked because the time limit was reached */
  interrupted: boolean;
  /** no applicable rule among the targets */
  skipped: boolean;
  seed: number;
  failure?: Failure;
}

/** Thrown inside the predicate so fast-check records a failure with our message. */
class PropertyFailure extends Error {}

export function defaultReplay(id: string, sizeName = 'small') {
  return (seed: number, path: string, rules: string) =>
    `npx momlab check --property ${id} --rules ${rules} --sizes ${sizeName} --seed ${seed} --path ${path}`;
}

export async function runProperty<C>(prop: Property<C>, targets: RuleTarget[], env: PropertyEnv, opts: RunOptions): Promise<PropertyReport> {
  if (!(Number.isInteger(opts.numRuns) && opts.numRuns >= 1)) throw new ConfigError(`property '${prop.id}': the number of runs must be a positive integer, got ${opts.numRuns}`);
  const applicable = prop.perRule ? targets.filter((t) => prop.applies(t)) : targets.slice(0, 1);
  const label = (t: RuleTarget) => (prop.perRule ? t.name : 'any');
  const base = { property: prop.id, title: prop.title };
  if (applicable.length === 0) {
    return { ...base, cases: 0, perRule: [], passed: true, interrupted: false, skipped: true, seed: opts.seed ?? 0 };
  }
  const stats = new Map<string, RuleStats>(applicable.map((t) => [label(t), { rule: label(t), cases: 0, worstErrRatio: 0, worstMaxAbs: 0, tolerance: 0 }]));
  let failedOnce = false;

  const caseArb =
    applicable.length === 1
      ? prop.arbitrary(applicable[0], opts.sizes).map((c) => ({ rule: applicable[0], c }))
      : fc.constantFrom(...applicable).chain((rule) => prop.arbitrary(rule, opts.sizes).map((c) => ({ rule, c })));

  const tally = (t: RuleTarget, out: Outcome) => {
    if (failedOnce) return; // shrinking re-runs cases: they are not new cases
    const s = stats.get(label(t))!;
    s.cases++;
    // NaN is the worst possible result: keep it visible
    s.worstErrRatio = Number.isNaN(out.errRatio) || Number.isNaN(s.worstErrRatio) ? NaN : Math.max(s.worstErrRatio, out.errRatio);
    s.worstMaxAbs = Number.isNaN(out.maxAbs) || Number.isNaN(s.worstMaxAbs) ? NaN : Math.max(s.worstMaxAbs, out.maxAbs);
    s.tolerance = Math.max(s.tolerance, out.tolerance);
    if (!out.ok) failedOnce = true;
  };

  const property = fc.asyncProperty(caseArb, async ({ rule, c }) => {
    let out: Outcome;
    try {
      out = await prop.check(env, rule, c);
    } catch (e) {
      if (fc.PreconditionFailure.isFailure(e)) throw e; // a skipped case (fc.pre), not a failure
      // A typed error (canary overwritten, device lost, ...) is a failure of this case too.
      tally(rule, { ok: false, errRatio: NaN, maxAbs: NaN, tolerance: 0 });
      throw e;
    }
    tally(rule, out);
    opts.onCase?.();
    if (!out.ok) throw new PropertyFailure(out.message ?? 'property does not hold');
  });

  const params: fc.Parameters<[{ rule: RuleTarget; c: C }]> = { numRuns: opts.numRuns };
  if (opts.seed !== undefined) params.seed = opts.seed;
  if (opts.path !== undefined) params.path = opts.path;
  if (opts.timeLimitMs !== undefined) params.interruptAfterTimeLimit = opts.timeLimitMs;
  let r: fc.RunDetails<[{ rule: RuleTarget; c: C }]>;
  try {
    r = await fc.check(property, params);
  } catch (e) {
    // fast-check throws (rather than reports) when a replay path does not exist for this seed
    if (opts.path !== undefined) throw new ConfigError(`property '${prop.id}': cannot replay path '${opts.path}' with seed ${opts.seed}: ${(e as Error).message.split('\n')[0]}`);
    throw e;
  }

  const cases = [...stats.values()].reduce((n, s) => n + s.cases, 0);
  const report: PropertyReport = {
    ...base,
    cases,
    perRule: [...stats.values()],
    passed: !r.failed && cases > 0,
    interrupted: r.interrupted,
    skipped: false,
    seed: r.seed,
  };
  if (!report.passed) {
    const rules = applicable.map((t) => t.name).join(',');
    const replay = (opts.replay ?? defaultReplay(prop.id, opts.sizeName))(r.seed, r.counterexamplePath ?? '', rules);
    if (r.counterexample) {
      const [{ rule, c }] = r.counterexample;
      const err = r.errorInstance;
      report.failure = {
        rule: label(rule),
        seed: r.seed,
        path: r.counterexamplePath ?? '',
        message: err instanceof Error ? `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}` : String(err),
        shrunk: summarize(prop.describe(c)),
        replay,
      };
    } else {
      // No case ran to the end: the time limit came first, or every case was discarded.
      const why = r.interrupted ? 'the time limit was reached before any case finished' : `all ${r.numSkips} cases drawn were discarded`;
      report.failure = { rule: '-', seed: r.seed, path: '', message: `ran no case (${why}): a property that ran no case has not passed`, shrunk: null, replay };
    }
  }
  return report;
}

/** A failure as text: what failed, the shrunk case, and how to replay it. */
export function formatFailure(rep: PropertyReport): string {
  const f = rep.failure;
  if (!f) return '';
  return [
    `property '${rep.property}' failed for rule ${f.rule}: ${f.message}`,
    `  seed ${f.seed}, path ${f.path}`,
    `  shrunk case: ${JSON.stringify(f.shrunk)}`,
    `  replay: ${f.replay}`,
  ].join('\n');
}
