/**
 * Counterexamples a person can use (issue 16 §6): a failure writes its whole shrunk case to a new
 * file (never over another), every array of every property's case round-trips exactly through it,
 * and `momlab check|fuzz --replay FILE` runs exactly that case again, refusing a changed rule file.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BUILTIN_RULES, RULE_NAMES } from '../reference/rules/index.js';
import type { BuiltinRule } from '../reference/rules/types.js';
import { SIZES } from '../properties/arbitraries.js';
import { refChunkedEqualsRecurrent } from '../properties/chunked-vs-recurrent.js';
import { GPU_PROPERTIES } from '../properties/gpu.js';
import { GRADIENT_PROPERTIES } from '../properties/gradients.js';
import { gpuLayerProperty, layerDecodeProperty, layerMixingProperty } from '../properties/layer.js';
import { REFERENCE_PROPERTIES } from '../properties/reference.js';
import { stateStaysFinite, textGpuEqualsReference } from '../properties/rule-file.js';
import { decodeCase, encodeCase, parseCaseFile, runProperty } from '../properties/runner.js';
import type { Property, RuleTarget } from '../properties/types.js';
import { builtinTarget } from '../src/rules.js';

function momlab(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/momlab.js', ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Deep equality that tells typed array types apart and -0 from 0 (Object.is on every number). */
function same(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' || typeof b === 'number') return Object.is(a, b);
  if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b)) {
    if (!ArrayBuffer.isView(a) || !ArrayBuffer.isView(b) || a.constructor !== b.constructor) return false;
    const x = a as unknown as ArrayLike<number>;
    const y = b as unknown as ArrayLike<number>;
    return x.length === y.length && Array.from(x).every((v, i) => Object.is(v, y[i]));
  }
  if (Array.isArray(a) || Array.isArray(b)) return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => same(v, b[i]));
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return a === b;
}

describe('case files', () => {
  it('every property case of every rule round-trips exactly (typed arrays, -0, NaN, undefined)', () => {
    const props = [...REFERENCE_PROPERTIES, ...GRADIENT_PROPERTIES, ...GPU_PROPERTIES, layerDecodeProperty, layerMixingProperty, gpuLayerProperty, textGpuEqualsReference, stateStaysFinite] as Property<unknown>[];
    let n = 0;
    for (const name of RULE_NAMES) {
      const t = builtinTarget(name);
      for (const p of props) {
        if (!p.applies(t)) continue;
        for (const c of fc.sample(p.arbitrary(t, SIZES.small), { numRuns: 2, seed: n })) {
          const back = decodeCase(JSON.parse(JSON.stringify(encodeCase(c))), 'test');
          expect(same(back, c), `${p.id} ${name}`).toBe(true);
          n++;
        }
      }
    }
    expect(n).toBeGreaterThan(100);
    const odd = { a: new Float64Array([-0, NaN, Infinity, -Infinity, 0.1 + 0.2, 5e-324, -1.7976931348623157e308]), b: new Float32Array([Math.fround(1 / 3), -0]), c: [undefined, 1, NaN, -0], d: undefined, e: -0, s: 'NaN' };
    const back = decodeCase(JSON.parse(JSON.stringify(encodeCase(odd))), 'test');
    expect(same(back, odd)).toBe(true);
    expect(() => encodeCase({ f: () => 1 })).toThrow(/cannot record/);
    expect(() => encodeCase(new Map())).toThrow(/a case holds a Map/);
  });

  it('a failure writes the whole shrunk case to a new file, which reruns the same failure', async () => {
    // A plausible bug: the chunked form forgets the outputs of a last, partial chunk.
    const real = BUILTIN_RULES.delta;
    const broken: BuiltinRule = {
      ...real,
      chunked(seq, S, C) {
        const o = real.chunked(seq, S, C);
        const r = seq.n % C;
        if (r) o.fill(0, (seq.n - r) * seq.dv);
        return o;
      },
    };
    const target: RuleTarget = { name: 'text:broken', ref: broken, chunked: broken };
    const dir = join(mkdtempSync(join(tmpdir(), 'momlab-replay-')), 'failures');
    const header = { command: 'check' as const, ruleSpec: 'delta', ruleFile: null, sizes: 'small' };
    const run = () => runProperty(refChunkedEqualsRecurrent, [target], {}, { sizes: SIZES.small, numRuns: 200, seed: 8, failures: { dir, header } });
    const [a, b] = [await run(), await run()];
    const file = a.failure!.file!;
    // named after the property, the rule and the seed; the same failure again gets a new name
    expect(file).toBe(join(dir, 'chunked-equals-recurrent-text_broken-8.json'));
    expect(b.failure!.file).toBe(join(dir, 'chunked-equals-recurrent-text_broken-8-2.json'));
    expect(readdirSync(dir).sort()).toEqual(['chunked-equals-recurrent-text_broken-8-2.json', 'chunked-equals-recurrent-text_broken-8.json']);
    // a directory that cannot be made (under a file): the failure is still reported, saying why there is no file
    const blocked = await runProperty(refChunkedEqualsRecurrent, [target], {}, { sizes: SIZES.small, numRuns: 200, seed: 8, failures: { dir: join(file, 'sub'), header } });
    expect(blocked.failure).toMatchObject({ message: a.failure!.message, fileError: expect.stringMatching(/ENOTDIR|EEXIST/) });
    expect(blocked.failure!.file).toBeUndefined();
    const meta = parseCaseFile(readFileSync(file, 'utf8'), file);
    expect(meta).toMatchObject({ command: 'check', property: 'chunked-equals-recurrent', rule: 'text:broken', seed: 8, path: a.failure!.path, message: a.failure!.message, ruleSpec: 'delta' });
    // every array in full, as plain numbers with its type
    const c = decodeCase(meta.case, file) as { n: number; dk: number; q: Float64Array; S0: Float64Array };
    expect(c.q).toBeInstanceOf(Float64Array);
    expect(c.q.length).toBe(c.n * c.dk);
    expect(a.failure!.shrunk).toMatchObject({ q: expect.stringMatching(/^Float64Array\(/) });
    // the decoded case fails the broken rule with the same message, and holds for the real one
    const again = refChunkedEqualsRecurrent.check({}, target, c as never) as { ok: boolean; message?: string };
    expect(again.ok).toBe(false);
    expect(again.message).toBe(a.failure!.message);
    expect((refChunkedEqualsRecurrent.check({}, builtinTarget('delta'), c as never) as { ok: boolean }).ok).toBe(true);
    // momlab check --replay: the rule named in the file (the real delta) runs this exact case
    const r = momlab('check', '--replay', file);
    expect(r.stdout + r.stderr).toMatch(/replayed 'chunked-equals-recurrent' on text:broken .*: holds/);
    expect(r.status).toBe(0);
    const j = momlab('check', '--replay', file, '--json');
    expect(JSON.parse(j.stdout)).toMatchObject({ property: 'chunked-equals-recurrent', passed: true, seed: 8 });
  });

  it('momlab fuzz --replay reruns a recorded failure and refuses a changed rule file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'momlab-replay-'));
    const rule = join(dir, 'nonlinear.rule');
    copyFileSync('rules/nonlinear-readout.rule', rule);
    const failures = join(dir, 'cases');
    // the mixing property fails for a non-linear read-out (expected): its case is written all the same
    const f = momlab('fuzz', rule, '--property', 'mix-before-equals-after', '--runs', '30', '--seed', '7', '--failures', failures);
    expect(f.status, f.stderr).toBe(0);
    const [name] = readdirSync(failures);
    const file = join(failures, name);
    expect(f.stdout).toContain(`whole case: ${file} (rerun it with --replay ${file})`);
    const meta = parseCaseFile(readFileSync(file, 'utf8'), file);
    expect(meta.ruleFile).toMatchObject({ path: rule, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    const r = momlab('fuzz', '--replay', file);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain(`replayed 'mix-before-equals-after' on text:nonlinear (recorded with seed 7, sizes small): FAILS`);
    expect(r.stdout).toContain(meta.message);
    // replayed by the other command, or with other flags: refused with one line
    const other = momlab('check', '--replay', file);
    expect(other.status).toBe(2);
    expect(other.stderr.trim()).toBe(`momlab check: '${file}' was written by momlab fuzz; replay it with momlab fuzz --replay ${file}`);
    expect(momlab('fuzz', '--replay', file, '--seed', '3').stderr).toMatch(/takes no --seed/);
    expect(momlab('fuzz', rule, '--replay', file).stderr).toMatch(/takes no rule file argument/);
    // the rule file changed: refused, naming both hashes
    writeFileSync(rule, readFileSync(rule, 'utf8').replace('tanh(S\' * q)', 'S\' * q'));
    const changed = momlab('fuzz', '--replay', file);
    expect(changed.status).toBe(2);
    expect(changed.stderr).toMatch(/rule file '.*nonlinear\.rule' has changed since '.*' was written \(sha256 [0-9a-f]{12}…, now [0-9a-f]{12}…\)/);
    expect(changed.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('refuses a file that is not a case file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'momlab-replay-'));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"format": "something else"}');
    const r = momlab('check', '--replay', bad);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(`momlab check: case file '${bad}' is not a momlab case file (format 'momlab-counterexample/1')`);
    writeFileSync(bad, '[1, 2');
    expect(momlab('check', '--replay', bad).stderr).toMatch(/is not JSON/);
    expect(momlab('check', '--replay', join(dir, 'missing.json')).status).toBe(2);
  });
});
