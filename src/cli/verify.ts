/**
 * `momlab verify`: compare another implementation's outputs with golden vectors (momlab vectors).
 * Every tensor of expected.safetensors (or those under --only PREFIX) must be present in the
 * outputs file with the same shape; each is compared with docs/spec.md §9's metric against the tolerance
 * the manifest gives for it. A missing tensor, a wrong shape or a NaN/Inf fails. Exit 0 or 1.
 * A conv cache (`*.conv_cache.*`, [B, C, W-1]) may also come in fla's own layout [B, C, W]:
 * fla keeps one more input, the oldest; its last W-1 columns are compared.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from './args.js';
import { ConfigError, FormatError } from '../../reference/errors.js';
import { compareArrays, SPEC_ATOL } from '../../properties/compare.js';
import { readSafetensors } from '../io/safetensors.js';

export const usage = `usage: momlab verify --vectors DIR --outputs FILE.safetensors [--only PREFIX] [--tolerance X]

Compare FILE's tensors (named as in DIR/expected.safetensors, e.g. core.o, layer.y) with the
golden values. Prints per tensor the error ratio rms(ref-out)/rms(ref) and the max abs error;
exits 0 when every tensor passes its tolerance (from DIR/manifest.json), 1 otherwise.
--only takes comma-separated name prefixes (core. / layer.y,layer.router_logits) to check a subset. --tolerance X replaces the manifest's tolerance
(e.g. 6e-3 for kernels computing with TF32 dots, the bound fla's own tests use).
Conv caches (layer.conv_cache.{q,k,v}.{slot}, [B, C, conv_size-1]) are also accepted in fla's
[B, C, conv_size] layout: the oldest column, which momlab does not keep, is dropped.`;

export interface VerifyRow {
  name: string;
  errRatio: number;
  maxAbs: number;
  tolerance: number;
  pass: boolean;
  problem: string | null;
  /** how the outputs tensor was read, when not as is (fla's wider conv cache) */
  note?: string;
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

interface Manifest {
  expected: { name: string; shape: number[]; tolerance: number }[];
}

async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, 'manifest.json');
  let m: Manifest;
  try {
    m = JSON.parse(await readFile(path, 'utf8')) as Manifest;
  } catch (e) {
    throw new FormatError(`cannot read '${path}': ${(e as Error).message}`);
  }
  if (!Array.isArray(m?.expected) || m.expected.some((t) => typeof t?.name !== 'string' || !(typeof t.tolerance === 'number' && t.tolerance > 0))) {
    throw new FormatError(`'${path}': 'expected' must list { name, shape, tolerance } for every expected tensor`);
  }
  return m;
}

export async function verify(dir: string, outputsPath: string, only?: string, tolerance?: number): Promise<VerifyRow[]> {
  if (tolerance !== undefined && !(tolerance > 0 && tolerance < 1)) throw new ConfigError(`momlab verify: --tolerance must be in (0, 1), got ${tolerance}`);
  const manifest = await readManifest(dir);
  const expected = await readSafetensors(join(dir, 'expected.safetensors'));
  const outputs = await readSafetensors(outputsPath);
  const rows: VerifyRow[] = [];
  const prefixes = only?.split(',').filter(Boolean);
  const entries = manifest.expected.filter((t) => !prefixes || prefixes.some((p) => t.name.startsWith(p)));
  if (entries.length === 0) throw new ConfigError(`momlab verify: no expected tensor matches --only '${only}'`);
  for (const { name, tolerance: fromManifest } of entries) {
    const tol = tolerance ?? fromManifest;
    const ref = expected.tensors.get(name);
    if (!ref) throw new FormatError(`${expected.source}: missing tensor '${name}' listed in the manifest`);
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
      row.pass = cmp.pass(tol, SPEC_ATOL);
    }
    rows.push(row);
  }
  return rows;
}

const fmt = (x: number) => (Number.isNaN(x) ? 'NaN' : x.toExponential(2));

export async function run(argv: string[]): Promise<number> {
  const { flags } = parseArgs(argv, { vectors: 'string', outputs: 'string', only: 'string', tolerance: 'number' }, 'verify');
  for (const f of ['vectors', 'outputs'] as const) if (flags[f] === undefined) throw new ConfigError(`momlab verify: --${f} is required\n\n${usage}`);
  const rows = await verify(flags.vectors as string, flags.outputs as string, flags.only as string | undefined, flags.tolerance as number | undefined);
  const w = Math.max(6, ...rows.map((r) => r.name.length));
  console.log(`${'tensor'.padEnd(w)}  ${'err ratio'.padStart(9)}  ${'max abs'.padStart(9)}  ${'tol'.padStart(8)}  result`);
  for (const r of rows) {
    console.log(`${r.name.padEnd(w)}  ${fmt(r.errRatio).padStart(9)}  ${fmt(r.maxAbs).padStart(9)}  ${fmt(r.tolerance).padStart(8)}  ${r.pass ? 'pass' : `FAIL${r.problem ? ` (${r.problem})` : ''}`}${r.note ? ` (${r.note})` : ''}`);
  }
  const failed = rows.filter((r) => !r.pass).length;
  console.log(failed ? `${failed} of ${rows.length} tensors FAIL` : `all ${rows.length} tensors pass`);
  return failed ? 1 : 0;
}
