/**
 * The catalogue of docs/refusals.md: every bad input gets one line naming the problem and exit 2
 * (1 for a failed check), never a stack trace, a hang, unbounded memory or an overwritten file.
 * Most cases run in this process through runCli (what the binary runs); a few spawn the real
 * binary to prove the process exit code and that no stack is printed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../reference/errors.js';
import { getRule } from '../reference/rules/index.js';
import { SIZES } from '../properties/arbitraries.js';
import { assertProperty } from '../properties/assert.js';
import { runProperty } from '../properties/runner.js';
import type { Property } from '../properties/types.js';
import { runCli } from '../src/cli/main.js';
import { writeAtomic } from '../src/io/files.js';
import { parseSafetensors, serializeSafetensors, type TensorIn } from '../src/io/safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'momlab-bad-input-'));
const at = (name: string) => join(dir, name);
const config = { hidden_size: 6, num_heads: 2, head_dim: 4, expand_v: 1, num_memories: 3, topk: 2, shared_mem: true, conv_size: 3 };

/** runCli in this process: exit code, stdout, stderr. */
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } });
  return { code, out, err };
}

/** A refusal: the exit code, one line on stderr containing `fragment`, no stack. */
async function refused(argv: string[], fragment: string | RegExp, code = 2): Promise<string> {
  const r = await cli(...argv);
  expect(r.code, `${argv.join(' ')}\n${r.err}`).toBe(code);
  const lines = r.err.trimEnd().split('\n');
  expect(lines, argv.join(' ')).toHaveLength(1);
  expect(lines[0]).toMatch(typeof fragment === 'string' ? new RegExp(fragment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : fragment);
  expect(r.err).not.toMatch(/\n\s+at /);
  return lines[0];
}

beforeAll(async () => {
  writeFileSync(at('cfg.json'), JSON.stringify(config));
  writeFileSync(at('huge.json'), JSON.stringify({ ...config, hidden_size: 1e9 }));
  const r = await cli('vectors', '--config', at('cfg.json'), '--batch', '2', '--tokens', '7', '--seed', '5', '--out', at('vec'));
  expect(r.code, r.err).toBe(0);
});

describe('arguments are parsed strictly, naming the flag', () => {
  it.each([
    [['init', '--out', '--batch', '1'], 'option --out needs a value'],
    [['trace', '--seed='], "option --seed needs a number, got ''"],
    [['trace', 'stray'], "unexpected argument 'stray'"],
    [['trace', '--tokens', '3', '--tokens', '4'], 'option --tokens is given twice'],
    [['trace', '--bogus'], 'unknown option --bogus'],
    [['trace', '--json=yes'], 'option --json takes no value'],
    [['trace', '--tokens', '0x10'], "option --tokens needs a number, got '0x10'"],
    [['trace', '--tokens', '2.5'], '--tokens must be a positive integer, got 2.5'],
    [['verify', '--vectors'], 'option --vectors needs a value'],
    [['fuzz', 'rules/decay.rule', 'rules/linear.rule'], "unexpected argument 'rules/linear.rule'"],
    [['fuzz'], 'expected one rule file'],
    [['nope'], "unknown command 'nope'"],
    [['check', '--sizes', '__proto__'], "--sizes must be one of small, medium, large, got '__proto__'"],
    [['check', '--seed', '1.5'], '--seed must be an integer in -2^31..2^31-1, got 1.5'],
    [['start', '--runs', '0'], 'momlab start: --runs must be a positive integer, got 0'],
    [['fuzz', 'rules/decay.rule', '--property', 'state-size-constant', '--seed', '1', '--path', 'zz'], "cannot replay path 'zz' with seed 1"],
    [['trace', '--max-memory', 'lots'], "--max-memory needs a size such as 2GiB, 512MiB or 1e9 (bytes), got 'lots'"],
  ])('%j', async (argv, fragment) => {
    await refused(argv, fragment);
  });
});

describe('no input exhausts memory or hangs', () => {
  it('trace: a request over the budget is refused with the figure and the limit', async () => {
    await refused(['trace', '--tokens', '1e12'], /trace of 1000000000000 tokens .* needs about [\d.]+ GiB, over the memory budget of 4\.0 GiB \(--max-memory/);
    await refused(['trace', '--tokens', '30000000'], /needs about [\d.]+ GiB, over the memory budget of 4\.0 GiB/);
    await refused(['trace', '--dk', '100000', '--dv', '100000'], /over the memory budget/);
    // the same request fits a larger budget; a small one fits the default
    await refused(['--max-memory', '64KiB', 'trace', '--tokens', '40'], /needs about \d+ KiB, over the memory budget of 64 KiB/);
    const ok = await cli('trace', '--tokens', '40', '--json', '--max-memory=1MiB');
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out.trim().split('\n')).toHaveLength(42); // config, 40 tokens, the routing summary
  });

  it('init and vectors: hidden_size 1e9 is refused before allocating', async () => {
    await refused(['init', '--config', at('huge.json'), '--seed', '1', '--out', at('huge.safetensors')], /a layer of \d+ parameters needs about [\d.]+ GiB, over the memory budget/);
    await refused(['vectors', '--config', at('huge.json'), '--seed', '1', '--out', at('huge-vec')], /over the memory budget/);
    expect(existsSync(at('huge.safetensors')) || existsSync(at('huge-vec'))).toBe(false);
  });

  it('check: sizes over the budget are refused before the GPU starts', async () => {
    await refused(['check', '--sizes', 'large', '--max-memory', '1MiB'], /momlab check: a case at sizes large needs about [\d.]+ MiB, over the memory budget of 1\.0 MiB/);
  });

  it('devices, pipes and directories are refused as inputs (no endless read)', async () => {
    await refused(['verify', '--vectors', at('vec'), '--outputs', '/dev/zero'], "'/dev/zero' is not a regular file");
    await refused(['fuzz', '/dev/zero'], "rule file '/dev/zero' is not a regular file");
    await refused(['init', '--config', '/dev/zero', '--seed', '1', '--out', at('w0.safetensors')], "config '/dev/zero' is not a regular file");
    await refused(['init', '--config', dir, '--seed', '1', '--out', at('w0.safetensors')], 'is not a regular file');
    await refused(['vectors', '--config', at('cfg.json'), '--weights', '/dev/zero', '--seed', '1', '--out', at('v0')], "'/dev/zero' is not a regular file");
  });

  it('a safetensors header whose 60 entries share one span is refused before decoding', async () => {
    const n = 1 << 16;
    const header: Record<string, unknown> = {};
    for (let i = 0; i < 60; i++) header[`t${i}`] = { dtype: 'F32', shape: [n], data_offsets: [0, 4 * n] };
    const head = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(head.length));
    writeFileSync(at('overlap.safetensors'), Buffer.concat([len, head, Buffer.alloc(4 * n)]));
    await refused(['verify', '--vectors', at('vec'), '--outputs', at('overlap.safetensors')], /tensor 't\d+': data_offsets \[0, 262144\] overlap the previous tensor/);
  });

  it('verify: files over the budget are refused with the figure', async () => {
    await refused(['verify', '--vectors', at('vec'), '--outputs', join(at('vec'), 'expected.safetensors'), '--max-memory', '2KiB'], /expected\.safetensors: reading it needs about \d+ KiB, over the memory budget of 2 KiB/);
  });
});

describe('no raw stack traces, no silent overwrites', () => {
  it('init --out a directory, an unwritable place, and vectors --out a file: one line each', async () => {
    mkdirSync(at('outdir'), { recursive: true });
    await refused(['init', '--config', at('cfg.json'), '--seed', '1', '--out', at('outdir')], "the output '" + at('outdir') + "' exists and is not a regular file");
    await refused(['init', '--config', at('cfg.json'), '--seed', '1', '--out', at('no/such/dir/w.safetensors')], /cannot write '.*no\/such\/dir\/w\.safetensors': ENOENT: no such file or directory$/);
    await refused(['vectors', '--config', at('cfg.json'), '--seed', '1', '--out', at('cfg.json')], 'exists and is not a directory');
    await refused(['check', '--path', 'zz', '--seed', '1', '--property', 'routing-invariants', '--rules', 'linear'], "--path must be the path a failure printed (numbers separated by ':', e.g. 3:0:1), got 'zz'");
  });

  it('--out never overwrites an input, nor an existing file without --force', async () => {
    const before = readFileSync(at('cfg.json'), 'utf8');
    await refused(['init', '--config', at('cfg.json'), '--seed', '1', '--out', at('cfg.json')], 'is the input');
    await refused(['init', '--config', at('cfg.json'), '--seed', '1', '--out', at('cfg.json'), '--force'], 'is the input');
    expect(readFileSync(at('cfg.json'), 'utf8')).toBe(before);

    expect((await cli('init', '--config', at('cfg.json'), '--seed', '1', '--out', at('w.safetensors'))).code).toBe(0);
    const first = readFileSync(at('w.safetensors'));
    await refused(['init', '--config', at('cfg.json'), '--seed', '2', '--out', at('w.safetensors')], 'exists (pass --force to replace it)');
    expect(readFileSync(at('w.safetensors')).equals(first)).toBe(true);
    expect((await cli('init', '--config', at('cfg.json'), '--seed', '2', '--out', at('w.safetensors'), '--force')).code).toBe(0);
    expect(readFileSync(at('w.safetensors')).equals(first)).toBe(false);

    // vectors: into a directory that holds them, without --force; its weights file as --weights, even with it
    await refused(['vectors', '--config', at('cfg.json'), '--seed', '5', '--out', at('vec')], 'exists (pass --force to replace it)');
    await refused(['vectors', '--config', at('cfg.json'), '--weights', join(at('vec'), 'weights.safetensors'), '--seed', '5', '--out', at('vec'), '--force'], 'is the input');
    // no temporary file is left behind by any of this
    for (const d of [dir, at('vec')]) expect(readdirSync(d).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('a write that fails leaves neither a half file nor a temporary one', async () => {
    mkdirSync(at('target'), { recursive: true });
    // renaming a file onto a directory fails after the data was written to the temporary name
    await expect(writeAtomic(at('target'), 'data')).rejects.toThrow(/cannot write/);
    expect(readdirSync(at('target'))).toEqual([]);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('the real binary: exit codes and no stack', () => {
    const spawn = (...args: string[]) => spawnSync(process.execPath, ['bin/momlab.js', ...args], { encoding: 'utf8' });
    for (const [args, fragment] of [
      [['init', '--out', '--batch', '1'], 'option --out needs a value'],
      [['trace', '--tokens', '1e12'], 'over the memory budget'],
      [['verify', '--vectors', at('vec'), '--outputs', '/dev/zero'], 'is not a regular file'],
    ] as const) {
      const r = spawn(...args);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(fragment);
      expect(r.stdout).toBe('');
    }
  });
});

describe('verify cannot be talked into a pass', () => {
  const vec = () => at('vec');
  /** The expected tensors with `edit` applied, written as an outputs file. */
  function outputs(name: string, edit: (t: Record<string, TensorIn>) => void): string {
    const f = parseSafetensors(readFileSync(join(vec(), 'expected.safetensors')));
    const t: Record<string, TensorIn> = {};
    for (const [n, x] of f.tensors) t[n] = { shape: x.shape, data: x.data.slice() };
    edit(t);
    writeFileSync(at(name), serializeSafetensors(t));
    return at(name);
  }
  /** A copy of the vectors directory with the manifest (or a file) edited. */
  function edited(name: string, editManifest: (m: Record<string, unknown>) => void, editFile?: [string, (b: Buffer) => Buffer]): string {
    const d = at(name);
    mkdirSync(d, { recursive: true });
    for (const f of ['inputs.safetensors', 'expected.safetensors', 'weights.safetensors']) writeFileSync(join(d, f), readFileSync(join(vec(), f)));
    const m = JSON.parse(readFileSync(join(vec(), 'manifest.json'), 'utf8'));
    editManifest(m);
    writeFileSync(join(d, 'manifest.json'), JSON.stringify(m));
    if (editFile) writeFileSync(join(d, editFile[0]), editFile[1](readFileSync(join(d, editFile[0]))));
    return d;
  }
  const zeros = () =>
    outputs('zeros.safetensors', (t) => {
      for (const x of Object.values(t)) (x.data as Float64Array).fill(0);
    });

  it('all-zero outputs fail even with tolerance 1e9 written into the manifest', async () => {
    const d = edited('tol', (m) => {
      for (const e of m.expected as Record<string, unknown>[]) e.tolerance = 1e9;
      m.tolerance = 1e9;
    });
    const r = await cli('verify', '--vectors', d, '--outputs', zeros());
    expect(r.code, r.out + r.err).toBe(1);
    expect(r.out).toMatch(/layer\.y .*1\.00e-4 +FAIL/);
    expect(r.out).toMatch(/\d+ of 23 tensors FAIL/);
  });

  it('a manifest cut to one expected entry, or listing a wrong shape, is refused', async () => {
    const cut = edited('cut', (m) => (m.expected = (m.expected as unknown[]).slice(0, 1)));
    await refused(['verify', '--vectors', cut, '--outputs', zeros()], /manifest\.json' disagrees with expected\.safetensors on .*: the manifest must list exactly the expected tensors/);
    const shape = edited('shape', (m) => ((m.expected as { shape: number[] }[])[0].shape = [1]));
    await refused(['verify', '--vectors', shape, '--outputs', zeros()], /disagrees with expected\.safetensors on core\.o \[1\]/);
  });

  it('an input or expected file that does not match its recorded SHA-256 is refused', async () => {
    const flip = (b: Buffer) => {
      b[b.length - 1] ^= 1;
      return b;
    };
    await refused(['verify', '--vectors', edited('sha-in', () => {}, ['inputs.safetensors', flip]), '--outputs', zeros()], /inputs\.safetensors: SHA-256 [0-9a-f]{64} is not the "[0-9a-f]{64}" recorded in manifest\.json/);
    await refused(['verify', '--vectors', edited('sha-ex', () => {}, ['expected.safetensors', flip]), '--outputs', zeros()], /expected\.safetensors: SHA-256 .* recorded in manifest\.json/);
    await refused(['verify', '--vectors', edited('no-sha', (m) => delete m.sha256), '--outputs', zeros()], 'is not a momlab-vectors/2 manifest');
  });

  it('partial outputs fail and name the --only to pass', async () => {
    const p = outputs('partial.safetensors', (t) => {
      for (const n of Object.keys(t)) if (!(n.startsWith('core.') || n === 'layer.y' || n.startsWith('layer.conv_cache.'))) delete t[n];
    });
    const r = await cli('verify', '--vectors', vec(), '--outputs', p);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/layer\.final_state\.0 .*FAIL \(missing from the outputs\)/);
    expect(r.out).toContain('the outputs hold only some of the expected tensors; to check just those, pass --only core.,layer.y,layer.conv_cache.');
    const only = await cli('verify', '--vectors', vec(), '--outputs', p, '--only', 'core.,layer.y,layer.conv_cache.');
    expect(only.code, only.out).toBe(0);
    expect(only.out).toMatch(/all 18 tensors pass/);
  });

  it('--tolerance looser than the table passes only with a warning; --precision picks the table', async () => {
    const p = outputs('noisy.safetensors', (t) => {
      t['core.o'].data = Float64Array.from(t['core.o'].data, (v, i) => v * (1 + 0.01 * Math.sin(i + 1)));
    });
    const strict = await cli('verify', '--vectors', vec(), '--outputs', p);
    expect(strict.code).toBe(1);
    expect(strict.out).not.toMatch(/WARNING/);
    expect((await cli('verify', '--vectors', vec(), '--outputs', p, '--precision', 'tf32')).code).toBe(1);
    const loose = await cli('verify', '--vectors', vec(), '--outputs', p, '--tolerance', '2e-2');
    expect(loose.code).toBe(0);
    expect(loose.out).toMatch(/^WARNING: --tolerance 0\.02 is looser than momlab's fp32 tolerance \(0\.0001\)/m);
    // a tighter bound needs no warning and still applies
    const tight = await cli('verify', '--vectors', vec(), '--outputs', join(vec(), 'expected.safetensors'), '--tolerance', '1e-9');
    expect(tight.code).toBe(0);
    expect(tight.out).not.toMatch(/WARNING/);
    await refused(['verify', '--vectors', vec(), '--outputs', p, '--precision', 'bf16'], "--precision must be one of fp32, tf32, got 'bf16'");
  });

  it('vectors refuses to write expected values that are not finite, naming the tensor', async () => {
    const w = parseSafetensors(readFileSync(join(vec(), 'weights.safetensors')));
    const scaled = (name: string, scale: (n: string) => number) => {
      const t: Record<string, TensorIn> = {};
      for (const [n, x] of w.tensors) t[n] = { shape: x.shape, data: x.data.map((v) => v * scale(n)) };
      writeFileSync(at(name), serializeSafetensors(t));
      return at(name);
    };
    // every weight x 1e30: the gates overflow inside the reference
    const all = scaled('all-1e30.safetensors', () => 1e30);
    await refused(['vectors', '--config', at('cfg.json'), '--weights', all, '--seed', '5', '--out', at('vec-big')], /momlab vectors: the reference cannot run on these inputs and weights: .*non-finite/);
    // the output projection and norm scaled: y is finite in float64 but over float32's range
    const out = scaled('out-big.safetensors', (n) => (n === 'o_proj.weight' ? 1e38 : n === 'o_norm.weight' ? 1e10 : 1));
    await refused(['vectors', '--config', at('cfg.json'), '--weights', out, '--seed', '5', '--out', at('vec-big')], /momlab vectors: expected tensor 'layer\.y' holds -?[\d.]+e\+\d+ at flat index \d+, not a finite float32 .*nothing was written/);
    expect(existsSync(at('vec-big'))).toBe(false);
  });
});

describe('no vacuous passes', () => {
  const never: Property<number> = {
    id: 'never-runs',
    title: 'every case is discarded',
    needsGpu: false,
    perRule: false,
    applies: () => true,
    arbitrary: () => fc.integer(),
    check: () => {
      fc.pre(false);
      return { ok: true, errRatio: 0, maxAbs: 0, tolerance: 0 };
    },
    describe: (c) => c,
  };
  const target = [{ name: 'linear', ref: getRule('linear') }];

  it('--runs 0, --time 0 and a negative time are bad input', async () => {
    await refused(['fuzz', 'rules/decay.rule', '--runs', '0'], '--runs must be a positive integer, got 0');
    await refused(['fuzz', 'rules/decay.rule', '--time', '0'], '--time must be a positive number of seconds, got 0');
    await refused(['fuzz', 'rules/decay.rule', '--time=-5'], '--time must be a positive number of seconds, got -5');
    await refused(['check', '--runs', '0'], '--runs must be a positive integer, got 0');
    await refused(['check', '--time', '0'], '--time must be a positive number of seconds, got 0');
  });

  it('the runner refuses zero runs and fails a property that ran no case', async () => {
    await expect(runProperty(never, target, {}, { sizes: SIZES.small, numRuns: 0 })).rejects.toThrow(ConfigError);
    const rep = await runProperty(never, target, {}, { sizes: SIZES.small, numRuns: 5, seed: 1 });
    expect(rep.cases).toBe(0);
    expect(rep.passed).toBe(false);
    expect(rep.failure?.message).toMatch(/ran no case .*a property that ran no case has not passed/);
    await expect(assertProperty(never, target, {}, { numRuns: 5, seed: 1 })).rejects.toThrow(/ran no case/);
    await expect(assertProperty(never, target, {}, { numRuns: 0 })).rejects.toThrow(/number of runs must be a positive integer/);
  });
});

describe('internal errors', () => {
  it('an internal error prints one line and exit 3; --debug adds the stack', async () => {
    // a fresh module graph with a command that fails unexpectedly; last in the file, as it replaces the modules
    vi.resetModules();
    vi.doMock('../src/cli/trace.js', () => ({ usage: '', run: () => Promise.reject(new TypeError('boom')) }));
    const { runCli: fresh } = await import('../src/cli/main.js');
    let err = '';
    const io = { stdout: { write: () => true }, stderr: { write: (s: string) => (err += s) } };
    expect(await fresh(['trace'], io)).toBe(3);
    expect(err).toBe('momlab trace: internal error: boom (run with --debug for the stack)\n');
    err = '';
    expect(await fresh(['trace', '--debug'], io)).toBe(3);
    expect(err).toMatch(/^momlab trace: internal error: boom\nTypeError: boom\n\s+at /);
  });
});
