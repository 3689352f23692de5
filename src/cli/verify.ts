/**
 * `momlab verify`: compare another implementation's outputs with golden vectors (momlab vectors).
 * Every tensor of expected.safetensors (or those under --only PREFIX) must be present in the
 * outputs file with the same shape; each is compared with docs/spec.md §9's metric against
 * momlab's own tolerance for its group and the declared precision (TOLERANCE), never a value
 * from a file. The manifest must list exactly the tensors of expected.safetensors and carry the
 * SHA-256 of inputs.safetensors and expected.safetensors; an edited set is refused.
 * A missing tensor, a wrong shape or a NaN/Inf fails. Exit 0 or 1 (2 for refused input).
 * A conv cache (`*.conv_cache.*`, [B, C, W-1]) may also come in fla's own layout [B, C, W]:
 * fla keeps one more input, the oldest; its last W-1 columns are compared.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from './args.js';
import { ConfigError, FormatError } from '../../reference/errors.js';
import { compareArrays, SPEC_ATOL } from '../../properties/compare.js';
import { readRegular, sha256File } from '../io/files.js';
import { footprint, readSafetensors, type SafetensorsFile } from '../io/safetensors.js';
import { processContext, type CliContext } from './context.js';
import { describeWhere, where, type Where } from './where.js';

/**
 * Tolerances (docs/spec.md §9 error ratio) for an implementation against these float64 values,
 * per tensor group and the precision it computes in.
 * fp32: measured with momlab's own float32 GPU path (lavapipe) on vectors like these: worst ratio
 * 1.0e-6 for layer.y and 8.7e-7 for the final states (hidden 128, head_dim 64, T = 37, chunk 64),
 * 2.8e-7 for core.o; 1.1e-6 over the random small cases of test/layer-gpu.test.ts; 7.4e-8 for
 * the conv caches (plain projections). 1e-4 leaves 100x for larger configurations and other
 * summation orders.
 * tf32: kernels whose dots run on TF32 tensor cores (fla's Triton kernels on fp32 inputs; 10-bit
 * mantissa) err around 1e-3; fla's own tests hold chunk_gated_delta_rule to 0.006.
 * Gradients (momlab vectors --grad): fp32 measured with the reference forward+backward rounding every
 * state, read-out and gradient to float32 after each token (test/vectors-grad.test.ts does it again):
 * worst ratio 6.3e-7 (core.drouter_logits; 2.3e-7 for the others) over the edge suite, the five rules,
 * both mixes and both initial states, so 1e-4 leaves the same margin as the forward's. tf32: fla's tests
 * hold dq, dk, dv, dh0 to 0.008 and the gate gradients dg, dbeta to 0.02.
 * Layer gradients (layer.jvp.*, momlab vectors --config --grad) use the grad rows: each is Σ g·dir over
 * a whole tensor, so g's own error ratio e gives about e·‖g‖·‖dir‖/√n on a jvp of that size (the
 * direction is the largest-|jvp| of 4 draws, so no jvp is a cancelled sum), and the reference's
 * finite differences err at most 2.9e-10 relative (Richardson error estimate, measured: 4.6e-11 for
 * hidden 64 × T 300, 2.9e-10 for hidden 256 × T 65; refused above 1e-7), far below 1e-4. Their 1e-6 absolute pass is off (JVP_ATOL):
 * a jvp's size is ‖g‖·‖dir‖, not an O(1) value, so a fixed absolute bound would excuse any error on a small one.
 */
export const TOLERANCE = {
  fp32: { core: 1e-4, layer: 1e-4, grad: 1e-4, 'grad-gate': 1e-4 },
  tf32: { core: 6e-3, layer: 6e-3, grad: 8e-3, 'grad-gate': 2e-2 },
} as const;
export type Precision = keyof typeof TOLERANCE;

/** The absolute outright pass per tensor: docs/spec.md §9's 1e-6, except none for a layer jvp (a sum whose size is not O(1)). */
export const atolOf = (name: string): number => (name.startsWith('layer.jvp.') ? 0 : SPEC_ATOL);
type Group = keyof (typeof TOLERANCE)['fp32'];

/** The tolerance group of an expected tensor: forward core/layer, a gradient (core.d*, layer.jvp.*), or a gate's gradient (core.dg.*, core.dbeta.*). */
export function groupOf(name: string): Group {
  if (/^core\.d(g|beta)\./.test(name)) return 'grad-gate';
  if (/^core\.d/.test(name) || name.startsWith('layer.jvp.')) return 'grad';
  return name.startsWith('core.') ? 'core' : 'layer';
}

export const usage = `usage: momlab verify --vectors DIR --outputs FILE.safetensors [--precision fp32|tf32] [--only PREFIX,...] [--tolerance X] [--json]

Compare FILE's tensors (named as in DIR/expected.safetensors, e.g. core.o, layer.y) with the
golden values. Prints per tensor the error ratio rms(ref-out)/rms(ref) and the max abs error;
exits 0 when every tensor of DIR/expected.safetensors passes, 1 otherwise.
  --precision P   what the implementation computes in: fp32 (default; tolerance ${TOLERANCE.fp32.layer}) or tf32
                  (matrix products on TF32 tensor cores, as fla's Triton kernels; ${TOLERANCE.tf32.layer})
  --only P,...    comma-separated name prefixes (core. / layer.y,layer.router_logits): check only those
  --tolerance X   a looser bound than momlab's: the report then carries a warning
  --json          the whole report as JSON
For each failing tensor the report says where: the index (b, t, h, i, j as its layout has them)
of the worst element, the first token whose slice fails the tolerance, the error ratio per head.
Conv caches (layer.conv_cache.{q,k,v}.{slot}, [B, C, conv_size-1]) are also accepted in fla's
[B, C, conv_size] layout: the oldest column, which momlab does not keep, is dropped.
DIR/manifest.json must list exactly the tensors of expected.safetensors with the SHA-256 of
inputs.safetensors and expected.safetensors: vectors that were edited are refused.
Gradients (core.d*, from momlab vectors --grad) have their own rows in the tolerance table (tf32:
${TOLERANCE.tf32.grad}, gate gradients core.dg.* and core.dbeta.* ${TOLERANCE.tf32['grad-gate']}). Layer gradients
(layer.jvp.*, one number each: sum(grad * layer.dir.*)) use the gradient row on the error ratio
alone: the 1e-6 absolute pass does not apply to them.
A suite (DIR/index.json, from momlab vectors --suite edge) is checked case by case: --outputs is then
a directory holding <case>.safetensors for each case, and the report is a table of case x tensor.`;

export interface VerifyRow {
  name: string;
  errRatio: number;
  maxAbs: number;
  tolerance: number;
  pass: boolean;
  problem: string | null;
  /** how the outputs tensor was read, when not as is (fla's wider conv cache) */
  note?: string;
  /** for a failing tensor that was compared: where it goes wrong */
  where?: Where;
}

/**
 * fla's conv state holds the last W conv inputs where momlab keeps W-1: for a conv cache given as
 * [..., C, W] against expected [..., C, W-1], its last W-1 columns (the oldest one dropped).
 */
function flaConvCache(name: string, ref: { shape: number[] }, got: { shape: number[]; data: Float64Array | Float32Array }): Float64Array | null {
  const r = ref.shape;
  const g = got.shape;
  if (!name.includes('.conv_cache.') || g.length !== r.length || g.some((d, i) => (i === g.length - 1 ? d !== r[i] + 1 : d !== r[i]))) return null;
  const w = r[r.length - 1];
  const rows = got.data.length / (w + 1);
  const out = new Float64Array(rows * w);
  for (let i = 0; i < rows; i++) for (let j = 0; j < w; j++) out[i * w + j] = got.data[i * (w + 1) + 1 + j];
  return out;
}

/** A manifest is a few kilobytes; anything past this is not one. */
const MAX_MANIFEST_BYTES = 16 << 20;

/** manifest.json, checked against the files: the SHA-256 of both and the list of expected tensors. */
async function checkVectors(dir: string, expected: SafetensorsFile): Promise<void> {
  const path = join(dir, 'manifest.json');
  let m: { format?: unknown; sha256?: Record<string, unknown>; expected?: unknown };
  try {
    m = JSON.parse((await readRegular(path, MAX_MANIFEST_BYTES, 'manifest')).toString('utf8'));
  } catch (e) {
    if (e instanceof FormatError) throw e;
    throw new FormatError(`'${path}' is not valid JSON: ${(e as Error).message}`);
  }
  if (m?.format !== 'momlab-vectors/2' || typeof m.sha256 !== 'object' || m.sha256 === null || !Array.isArray(m.expected)) {
    throw new FormatError(`'${path}' is not a momlab-vectors/2 manifest (format, sha256, expected): write the vectors again with this momlab (momlab vectors)`);
  }
  for (const file of ['inputs.safetensors', 'expected.safetensors']) {
    const got = await sha256File(join(dir, file), 'vectors file');
    if (m.sha256[file] !== got) throw new FormatError(`${join(dir, file)}: SHA-256 ${got} is not the ${JSON.stringify(m.sha256[file])} recorded in manifest.json (the vectors were edited or mixed from two runs)`);
  }
  const listed = (m.expected as { name?: unknown; shape?: unknown }[]).map((t) => `${String(t?.name)} ${JSON.stringify(t?.shape)}`);
  const inFile = [...expected.tensors].map(([n, t]) => `${n} ${JSON.stringify(t.shape)}`);
  const odd = [...listed.filter((x) => !inFile.includes(x)), ...inFile.filter((x) => !listed.includes(x))];
  if (odd.length || listed.length !== inFile.length) {
    throw new FormatError(`'${path}' disagrees with expected.safetensors${odd.length ? ` on ${odd.slice(0, 3).join(', ')}` : ' (an entry listed twice)'}: the manifest must list exactly the expected tensors and shapes`);
  }
}

/**
 * The coarsest prefixes (at dots) that cover only tensors the outputs hold: what to pass to --only
 * to check just those.
 */
export function onlyHint(expected: string[], present: Set<string>): string[] {
  const out: string[] = [];
  for (const name of expected.filter((n) => present.has(n))) {
    const parts = name.split('.');
    for (let k = 1; k <= parts.length; k++) {
      const prefix = k < parts.length ? parts.slice(0, k).join('.') + '.' : name;
      if (expected.every((n) => !n.startsWith(prefix) || present.has(n))) {
        if (!out.includes(prefix)) out.push(prefix);
        break;
      }
    }
  }
  return out;
}

export interface VerifyOptions {
  only?: string;
  precision?: Precision;
  /** a looser bound than the table's: reported with a warning */
  tolerance?: number;
  maxMemory?: number;
}

export interface VerifyReport {
  rows: VerifyRow[];
  warnings: string[];
  /** when the outputs hold only some of the tensors checked: the --only to check just those */
  onlyHint: string | null;
}

export async function verify(dir: string, outputsPath: string, o: VerifyOptions = {}): Promise<VerifyReport> {
  const precision = o.precision ?? 'fp32';
  if (!Object.hasOwn(TOLERANCE, precision)) throw new ConfigError(`momlab verify: --precision must be one of ${Object.keys(TOLERANCE).join(', ')}, got '${precision}'`);
  if (o.tolerance !== undefined && !(o.tolerance > 0 && o.tolerance < 1)) throw new ConfigError(`momlab verify: --tolerance must be in (0, 1), got ${o.tolerance}`);
  const budget = o.maxMemory ?? Infinity;
  const expected = await readSafetensors(join(dir, 'expected.safetensors'), { maxMemory: budget });
  await checkVectors(dir, expected);
  const outputs = await readSafetensors(outputsPath, { maxMemory: budget - footprint(expected) });
  const prefixes = o.only?.split(',').filter(Boolean);
  const names = [...expected.tensors.keys()].filter((n) => !prefixes || prefixes.some((p) => n.startsWith(p)));
  if (names.length === 0) throw new ConfigError(`momlab verify: no expected tensor matches --only '${o.only}' (expected: ${[...expected.tensors.keys()].join(', ')})`);
  const warnings: string[] = [];
  const rows: VerifyRow[] = [];
  for (const name of names) {
    const own = TOLERANCE[precision][groupOf(name)];
    const tol = o.tolerance ?? own;
    if (tol > own && !warnings.length) warnings.push(`WARNING: --tolerance ${o.tolerance} is looser than momlab's ${precision} tolerance (${own}): a pass here is not a pass at momlab's bound`);
    const ref = expected.tensors.get(name)!;
    const got = outputs.tensors.get(name);
    const row: VerifyRow = { name, errRatio: NaN, maxAbs: NaN, tolerance: tol, pass: false, problem: null };
    const sameShape = got !== undefined && got.shape.length === ref.shape.length && got.shape.every((d, i) => d === ref.shape[i]);
    const fla = got && !sameShape ? flaConvCache(name, ref, got) : null;
    if (!got) row.problem = 'missing from the outputs';
    else if (!sameShape && !fla) row.problem = `shape [${got.shape}], expected [${ref.shape}]`;
    else {
      if (fla) row.note = `fla layout [${got.shape}]: its last ${ref.shape[ref.shape.length - 1]} columns`;
      const cmp = compareArrays(ref.data, fla ?? got.data);
      row.errRatio = cmp.errRatio;
      row.maxAbs = cmp.maxAbs;
      row.problem = cmp.broken;
      row.pass = cmp.pass(tol, atolOf(name));
      if (!row.pass) row.where = where(name, ref.shape, ref.data, fla ?? got.data, tol, atolOf(name));
    }
    rows.push(row);
  }
  const present = new Set(names.filter((n) => outputs.tensors.has(n)));
  const hint = present.size > 0 && present.size < names.length ? onlyHint(names, present).join(',') : null;
  return { rows, warnings, onlyHint: hint };
}

const fmt = (x: number) => (Number.isNaN(x) ? 'NaN' : x.toExponential(2));

/** The largest index.json read (a few kilobytes for the suite momlab writes). */
const MAX_INDEX_BYTES = 1 << 20;
/** A case name is a folder and a file name: plain characters only, never a path. */
const CASE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

export interface SuiteCase {
  case: string;
  /** the case's outputs file is missing: every tensor of it fails */
  problem: string | null;
  report: VerifyReport | null;
}

/** The case names of a suite's index.json (momlab-vectors-suite/1), refused unless plain and distinct. */
async function suiteCases(dir: string): Promise<string[]> {
  const path = join(dir, 'index.json');
  let index: { format?: unknown; cases?: unknown };
  try {
    index = JSON.parse((await readRegular(path, MAX_INDEX_BYTES, 'suite index')).toString('utf8'));
  } catch (e) {
    if (e instanceof FormatError) throw e;
    throw new FormatError(`'${path}' is not valid JSON: ${(e as Error).message}`);
  }
  if (index?.format !== 'momlab-vectors-suite/1' || !Array.isArray(index.cases) || index.cases.length === 0)
    throw new FormatError(`'${path}' is not a momlab-vectors-suite/1 index with a list of cases: write the suite again with this momlab (momlab vectors --suite edge)`);
  const names = (index.cases as { name?: unknown }[]).map((c) => c?.name);
  for (const [i, n] of names.entries()) {
    if (typeof n !== 'string' || !CASE_NAME.test(n)) throw new FormatError(`'${path}': case ${i} has the name ${JSON.stringify(n)}, not a plain folder name`);
    if (names.indexOf(n) !== i) throw new FormatError(`'${path}': case '${n}' is listed twice`);
  }
  return names as string[];
}

/** Every case of a suite against OUT/<case>.safetensors; a case without its file fails. */
export async function verifySuite(dir: string, outputsDir: string, o: VerifyOptions = {}): Promise<SuiteCase[]> {
  const cases = await suiteCases(dir);
  const outStat = await stat(outputsDir).catch(() => null);
  if (!outStat?.isDirectory()) throw new ConfigError(`momlab verify: '${dir}' is a suite (index.json): --outputs must be a directory holding <case>.safetensors for each case, and '${outputsDir}' is not one`);
  const out: SuiteCase[] = [];
  for (const name of cases) {
    const file = join(outputsDir, `${name}.safetensors`);
    if (!(await stat(file).catch(() => null))) out.push({ case: name, problem: `no outputs file ${file}`, report: null });
    else out.push({ case: name, problem: null, report: await verify(join(dir, name), file, o) });
  }
  return out;
}

/** A tensor's column in the suite table: the name without its memory (core.dk.3 -> dk.*). */
const kindOf = (name: string) => name.replace(/^core\./, '').replace(/\.(\d+|shared)$/, '.*');

/** The case x tensor table: per case and tensor kind the worst error ratio, '!' where a tensor fails. */
function suiteTable(cases: SuiteCase[], log: (line: string) => void): void {
  const kinds: string[] = [];
  for (const c of cases) for (const r of c.report?.rows ?? []) if (!kinds.includes(kindOf(r.name))) kinds.push(kindOf(r.name));
  const cw = Math.max(4, ...cases.map((c) => c.case.length));
  const widths = kinds.map((k) => Math.max(k.length, 10));
  log(['case'.padEnd(cw), ...kinds.map((k, i) => k.padStart(widths[i]))].join('  '));
  for (const c of cases) {
    if (!c.report) {
      log(`${c.case.padEnd(cw)}  FAIL (${c.problem})`);
      continue;
    }
    const cells = kinds.map((k, i) => {
      const rows = c.report!.rows.filter((r) => kindOf(r.name) === k);
      if (!rows.length) return '-'.padStart(widths[i]);
      const bad = rows.some((r) => !r.pass);
      const worst = rows.reduce((a, r) => (Number.isNaN(r.errRatio) || r.errRatio > a ? r.errRatio : a), 0);
      return (fmt(worst) + (bad ? '!' : ' ')).padStart(widths[i]);
    });
    log([c.case.padEnd(cw), ...cells].join('  '));
  }
}

async function runSuite(flags: Record<string, unknown>, options: VerifyOptions, ctx: CliContext): Promise<number> {
  const cases = await verifySuite(flags.vectors as string, flags.outputs as string, options);
  const failedCases = cases.filter((c) => !c.report || c.report.rows.some((r) => !r.pass));
  const log = (line: string) => ctx.stdout.write(line + '\n');
  if (flags.json) {
    log(JSON.stringify({ passed: failedCases.length === 0, precision: flags.precision ?? 'fp32', cases }, null, 2));
    return failedCases.length ? 1 : 0;
  }
  const warnings = [...new Set(cases.flatMap((c) => c.report?.warnings ?? []))];
  for (const w of warnings) log(w);
  suiteTable(cases, log);
  for (const c of cases)
    for (const r of c.report?.rows ?? [])
      if (!r.pass) {
        log(`${c.case} ${r.name}: FAIL${r.problem ? ` (${r.problem})` : ''}, err ratio ${fmt(r.errRatio)}, max abs ${fmt(r.maxAbs)}, tol ${fmt(r.tolerance)}`);
        if (r.where) log(`  ${describeWhere(r.name, r.where)}`);
      }
  const tensors = cases.reduce((a, c) => a + (c.report?.rows.length ?? 0), 0);
  log(failedCases.length ? `${failedCases.length} of ${cases.length} cases FAIL (${failedCases.map((c) => c.case).join(', ')})` : `all ${cases.length} cases pass (${tensors} tensors)`);
  for (const w of warnings) log(w);
  return failedCases.length ? 1 : 0;
}

export async function run(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { flags } = parseArgs(argv, { vectors: 'string', outputs: 'string', only: 'string', precision: 'string', tolerance: 'number', json: 'boolean' }, 'verify');
  for (const f of ['vectors', 'outputs'] as const) if (flags[f] === undefined) throw new ConfigError(`momlab verify: --${f} is required (see momlab verify --help)`);
  const options: VerifyOptions = {
    only: flags.only as string | undefined,
    precision: flags.precision as Precision | undefined,
    tolerance: flags.tolerance as number | undefined,
    maxMemory: ctx.maxMemory,
  };
  const dir = flags.vectors as string;
  const isSuite = !(await stat(join(dir, 'manifest.json')).catch(() => null)) && (await stat(join(dir, 'index.json')).catch(() => null)) !== null;
  if (isSuite) return runSuite(flags, options, ctx);
  const rep = await verify(dir, flags.outputs as string, options);
  const log = (line: string) => ctx.stdout.write(line + '\n');
  const rows = rep.rows;
  const failed = rows.filter((r) => !r.pass).length;
  if (flags.json) {
    // NaN (a missing tensor's error) becomes null
    log(JSON.stringify({ passed: failed === 0, precision: flags.precision ?? 'fp32', ...rep }, null, 2));
    return failed ? 1 : 0;
  }
  for (const w of rep.warnings) log(w);
  const w = Math.max(6, ...rows.map((r) => r.name.length));
  log(`${'tensor'.padEnd(w)}  ${'err ratio'.padStart(9)}  ${'max abs'.padStart(9)}  ${'tol'.padStart(8)}  result`);
  for (const r of rows) {
    log(`${r.name.padEnd(w)}  ${fmt(r.errRatio).padStart(9)}  ${fmt(r.maxAbs).padStart(9)}  ${fmt(r.tolerance).padStart(8)}  ${r.pass ? 'pass' : `FAIL${r.problem ? ` (${r.problem})` : ''}`}${r.note ? ` (${r.note})` : ''}`);
  }
  for (const r of rows) if (r.where) log(describeWhere(r.name, r.where));
  log(failed ? `${failed} of ${rows.length} tensors FAIL` : `all ${rows.length} tensors pass`);
  if (rep.onlyHint) log(`the outputs hold only some of the expected tensors; to check just those, pass --only ${rep.onlyHint}`);
  for (const w of rep.warnings) log(w);
  return failed ? 1 : 0;
}
