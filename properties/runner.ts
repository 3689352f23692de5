/**
 * Runs one property over one or several rules with fast-check and reports what a person needs:
 * cases run per rule, the worst error measured, and on failure the seed, the path, the shrunk
 * configuration and the command that replays exactly that case.
 * A property that ran no case has not passed: numRuns below 1 is refused, and a run that ends
 * with zero cases (time limit, every case discarded) is reported as a failure.
 *
 * A failure can also be written whole to a case file (every array in full, docs/properties.md
 * "Replaying a failure"), which `momlab check|fuzz --replay FILE` runs again without fast-check.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { ConfigError, FormatError } from '../reference/errors.js';
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
  /** write a failure's shrunk case to a new file in `dir` (never overwriting one) */
  failures?: { dir: string; header: CaseHeader };
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
  /** the case file holding the whole shrunk case (RunOptions.failures) */
  file?: string;
  /** why the case file could not be written */
  fileError?: string;
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
      if (opts.failures) {
        const meta = { ...opts.failures.header, property: prop.id, rule: report.failure.rule, seed: r.seed, path: report.failure.path, message: report.failure.message };
        // an unwritable directory must not hide the failure itself
        await writeCaseFile(opts.failures.dir, meta, c).then(
          (file) => (report.failure!.file = file),
          (e: Error) => (report.failure!.fileError = e.message),
        );
      }
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
    ...(f.file ? [`  whole case: ${f.file} (rerun it with --replay ${f.file})`] : []),
    ...(f.fileError ? [`  the case file could not be written: ${f.fileError}`] : []),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Case files

/** What a case file records besides the case: which command, rule and sizes drew it. */
export interface CaseHeader {
  command: 'check' | 'fuzz';
  /** the rule as named on the command line: a built-in, `layer`, or a rule file's path */
  ruleSpec: string;
  /** a rule file's path and SHA-256, so that a replay against a changed file is refused */
  ruleFile: { path: string; sha256: string } | null;
  sizes: string;
}

export interface CaseFile extends CaseHeader {
  property: string;
  /** the rule's row name (`text:<name>` for a rule file, `any` for a rule-independent property) */
  rule: string;
  seed: number;
  path: string;
  message: string;
  case: unknown;
}

const CASE_FORMAT = 'momlab-counterexample/1';
const TYPED = { Float64Array, Float32Array, Int32Array, Uint32Array, Int16Array, Uint16Array, Int8Array, Uint8Array, Uint8ClampedArray } as const;
type TypedName = keyof typeof TYPED;

/** A number as JSON: the shortest repr round-trips every float64; -0, NaN and ±Infinity as strings. */
const encodeNumber = (x: number): number | string => (Number.isFinite(x) && !Object.is(x, -0) ? x : Object.is(x, -0) ? '-0' : String(x));
function decodeNumber(x: unknown, where: string): number {
  if (typeof x === 'number') return x;
  if (x === '-0') return -0;
  if (x === 'NaN' || x === 'Infinity' || x === '-Infinity') return Number(x);
  throw new FormatError(`${where}: expected a number, got ${JSON.stringify(x)}`);
}

/**
 * A case as plain JSON that decodes to exactly the same values: typed arrays as
 * { $typed: 'Float64Array', values: [...] }, undefined as { $undefined: true }, numbers exact
 * (-0, NaN and ±Infinity outside a typed array as { $number: '-0' }).
 */
export function encodeCase(v: unknown): unknown {
  if (v === undefined) return { $undefined: true };
  if (typeof v === 'number') return typeof encodeNumber(v) === 'string' ? { $number: encodeNumber(v) } : v;
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (ArrayBuffer.isView(v)) {
    const name = v.constructor.name;
    if (!Object.hasOwn(TYPED, name)) throw new ConfigError(`a case holds a ${name}, which a case file cannot record`);
    return { $typed: name, values: Array.from(v as unknown as ArrayLike<number>, encodeNumber) };
  }
  if (Array.isArray(v)) return v.map(encodeCase);
  // plain objects, and fast-check's records (null prototype)
  const proto = typeof v === 'object' ? Object.getPrototypeOf(v) : undefined;
  if (proto === Object.prototype || proto === null) return Object.fromEntries(Object.entries(v).map(([k, e]) => [k, encodeCase(e)]));
  throw new ConfigError(`a case holds a ${typeof v === 'object' ? v.constructor.name : typeof v}, which a case file cannot record`);
}

/** The inverse of encodeCase; `where` names the file in errors. */
export function decodeCase(v: unknown, where: string): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((e) => decodeCase(e, where));
  const o = v as Record<string, unknown>;
  if (o.$undefined === true) return undefined;
  if ('$number' in o) return decodeNumber(o.$number, where);
  if (typeof o.$typed === 'string') {
    if (!Object.hasOwn(TYPED, o.$typed) || !Array.isArray(o.values)) throw new FormatError(`${where}: bad typed array (${JSON.stringify(o.$typed)})`);
    return TYPED[o.$typed as TypedName].from(o.values.map((x) => decodeNumber(x, where)));
  }
  return Object.fromEntries(Object.entries(o).map(([k, e]) => [k, decodeCase(e, where)]));
}

/** A file name part: letters, digits, '.', '_' and '-' only. */
const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_');

/**
 * Writes the case to `<dir>/<property>-<rule>-<seed>.json`, or `-2`, `-3`, ... when that name is
 * taken: the whole file is written under a temporary name and then hard-linked to the final one,
 * which fails rather than replaces an existing file. Returns the path.
 */
export async function writeCaseFile(dir: string, meta: Omit<CaseFile, 'case'>, c: unknown): Promise<string> {
  const text = `${JSON.stringify({ format: CASE_FORMAT, ...meta, case: encodeCase(c) })}\n`;
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.tmp-${randomBytes(6).toString('hex')}`);
  await writeFile(tmp, text, { flag: 'wx' });
  try {
    const stem = `${safe(meta.property)}-${safe(meta.rule)}-${meta.seed}`;
    for (let n = 1; ; n++) {
      const file = join(dir, `${stem}${n === 1 ? '' : `-${n}`}.json`);
      try {
        await link(tmp, file);
        return file;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || n >= 10_000) throw e;
      }
    }
  } finally {
    await unlink(tmp);
  }
}

/** A case file's contents, checked field by field (decoding the case is the caller's, with decodeCase). */
export function parseCaseFile(text: string, where: string): CaseFile {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new FormatError(`${where} is not JSON: ${(e as Error).message}`);
  }
  if (!j || typeof j !== 'object' || j.format !== CASE_FORMAT) throw new FormatError(`${where} is not a momlab case file (format '${CASE_FORMAT}')`);
  const str = (k: string) => {
    if (typeof j[k] !== 'string') throw new FormatError(`${where}: field '${k}' must be a string`);
    return j[k] as string;
  };
  const command = str('command');
  if (command !== 'check' && command !== 'fuzz') throw new FormatError(`${where}: field 'command' must be 'check' or 'fuzz'`);
  const rf = j.ruleFile as { path?: unknown; sha256?: unknown } | null;
  if (rf !== null && !(rf && typeof rf.path === 'string' && typeof rf.sha256 === 'string')) throw new FormatError(`${where}: field 'ruleFile' must be null or { path, sha256 }`);
  if (!Number.isInteger(j.seed)) throw new FormatError(`${where}: field 'seed' must be an integer`);
  if (!('case' in j)) throw new FormatError(`${where}: no 'case'`);
  return {
    command,
    ruleSpec: str('ruleSpec'),
    ruleFile: rf as CaseFile['ruleFile'],
    sizes: str('sizes'),
    property: str('property'),
    rule: str('rule'),
    seed: j.seed as number,
    path: str('path'),
    message: str('message'),
    case: j.case,
  };
}
