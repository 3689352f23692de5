/**
 * `momlab fuzz`: proof that the suite can fail. A rule with a non-linear read-out must show the
 * mixing property failing with a counterexample and a replay command; a GPU compile with a
 * sign flip injected (test-only hook) must be caught by gpu-equals-reference.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { getGpu } from '../gpu/device.js';
import { FormatError, RuleError } from '../reference/errors.js';
import { DEFAULT_MAX_MEMORY } from '../src/cli/context.js';
import { fuzzRule, run as fuzzRun } from '../src/cli/fuzz.js';
import { gpuDecodeTolerance, gpuMixTolerance } from '../properties/tolerances.js';

beforeAll(async () => {
  await getGpu(); // keeps Dawn's instance alive for the whole file
});

/** `momlab fuzz` in this process with its output captured: `out()` is what it printed so far. */
let printed = '';
const run = (argv: string[]) => fuzzRun(argv, { stdout: { write: (s: string) => (printed += s) }, stderr: { write: () => true }, maxMemory: DEFAULT_MAX_MEMORY });
function captureLog(): () => string {
  printed = '';
  return () => printed;
}

describe('momlab fuzz', () => {
  it('reports the mixing identity failing for a non-linear read-out, with a counterexample and replay', async () => {
    const out = captureLog();
    const failures = mkdtempSync(join(tmpdir(), 'momlab-fuzz-'));
    const code = await run(['rules/nonlinear-readout.rule', '--property', 'mix-before-equals-after', '--runs', '30', '--seed', '7', '--failures', failures]);
    const text = out();
    // the whole case is in a file of its own (test/replay.test.ts replays it)
    expect(readdirSync(failures)).toEqual(['mix-before-equals-after-text_nonlinear-readout-7.json']);
    expect(text).toContain(`whole case: ${join(failures, 'mix-before-equals-after-text_nonlinear-readout-7.json')}`);
    expect(text).toMatch(/read-out NOT linear/);
    expect(text).toMatch(/mix-before-equals-after\s+FAIL \(expected\)/);
    expect(text).toMatch(/shrunk case: \{"cfg"/);
    expect(text).toMatch(/replay: npx momlab fuzz rules\/nonlinear-readout\.rule --property mix-before-equals-after --seed 7 --path \d/);
    // The expected failure is the expected behaviour: exit 0.
    expect(code).toBe(0);
  });

  it('catches a sign flip injected into the GPU compile (gpu-equals-reference fails, exit 1)', async () => {
    const text = readFileSync('rules/decay.rule', 'utf8');
    // The state update line of the kernel: `state[...] = ((t1 * state[...]) + (k * v));` -> `-`.
    const flip = (wgsl: string) => wgsl.replace(/(state\[sb \+ i \* DV \+ j\] = .*\)) \+ (\(.*;)/, '$1 - $2');
    expect(flip('x')).toBe('x');
    const res = await fuzzRule(text, 'rules/decay.rule', { property: 'gpu-equals-reference', runs: 10, seed: 3, tamper: flip });
    const gpu = res.entries[0];
    expect(gpu.report.passed).toBe(false);
    expect(gpu.ok).toBe(false);
    expect(res.ok).toBe(false);
    expect(gpu.report.failure?.message).toMatch(/err ratio .* > 1\.0e-5/);
    expect(gpu.report.failure?.replay).toMatch(/--seed 3 --path/);
    // Without the fault the same cases pass.
    const clean = await fuzzRule(text, 'rules/decay.rule', { property: 'gpu-equals-reference', runs: 10, seed: 3 });
    expect(clean.ok).toBe(true);
  });

  it('passes every property, GPU forms included, on a shipped rule and exits 0 (JSON report)', async () => {
    const out = captureLog();
    const code = await run(['rules/hgrn2.rule', '--runs', '4', '--seed', '11', '--json']);
    const rep = JSON.parse(out());
    type Entry = { ok: boolean; skipped: boolean; report: { property: string; cases: number; perRule: { rule: string; tolerance: number }[] } };
    expect(rep.entries.map((e: Entry) => e.report.property)).toEqual([
      'gpu-equals-reference',
      'mix-before-equals-after',
      'gpu-mix-before-equals-after',
      'decode-equals-forward',
      'gpu-decode-equals-forward',
      'state-size-constant',
      'state-finite',
      'state-bounded',
      'gpu-finite',
      'gradient-finite-differences',
      'gradient-bounded',
      'gpu-gradient-equals-reference',
    ]);
    expect(rep.entries.every((e: Entry) => e.ok && !e.skipped && e.report.cases === 4)).toBe(true);
    // The GPU rows hold the text kernel to the text-rule tolerances, not a built-in's of the same name.
    const tol = (id: string) => rep.entries.find((e: Entry) => e.report.property === id).report.perRule[0];
    expect(tol('gpu-decode-equals-forward')).toMatchObject({ rule: 'text:hgrn2', tolerance: gpuDecodeTolerance('text:hgrn2') });
    expect(tol('gpu-mix-before-equals-after').tolerance).toBe(gpuMixTolerance('text:hgrn2'));
    expect(code).toBe(0);
  });

  it('a non-linear read-out: the GPU mixing row is n/a (the GPU refuses mix before), GPU decode runs', async () => {
    const out = captureLog();
    const code = await run(['rules/nonlinear-readout.rule', '--runs', '3', '--seed', '2', '--property', 'gpu-mix-before-equals-after']);
    expect(out()).toMatch(/^gpu-mix-before-equals-after\s+n\/a \(read-out not linear\)\s+0\s+-\s+-$/m);
    expect(code).toBe(0);
    const res = await fuzzRule(readFileSync('rules/nonlinear-readout.rule', 'utf8'), 'rules/nonlinear-readout.rule', { property: 'gpu-decode-equals-forward', runs: 3, seed: 2 });
    expect(res.entries[0].report.cases).toBe(3);
    expect(res.ok).toBe(true);
  });

  it('catches a fault only the GPU decode path shows (gpu-decode-equals-forward fails, exit 1)', async () => {
    // Injected: the state shrinks by half before the update when a memory's segment holds a
    // single token, as in a decode step; a pass over the whole sequence mostly has longer segments.
    // The time bound cuts shrinking short (GPU cases are slow on lavapipe); the failure stands.
    const text = readFileSync('rules/linear.rule', 'utf8');
    const fault = (wgsl: string) => wgsl.replace('= (state[sb + i * DV + j] + (', '= (state[sb + i * DV + j] * select(1.0, 0.5, p1 - p0 == 1u) + (');
    expect(fault('x')).toBe('x');
    expect(fault('= (state[sb + i * DV + j] + (k')).not.toBe('= (state[sb + i * DV + j] + (k');
    const res = await fuzzRule(text, 'rules/linear.rule', { property: 'gpu-decode-equals-forward', runs: 15, seed: 4, timeSeconds: 4, tamper: fault });
    expect(res.entries[0].report.passed).toBe(false);
    expect(res.ok).toBe(false);
    expect(res.entries[0].report.failure?.message).toMatch(/err ratio .* > 1\.0e-6/);
    expect(res.entries[0].report.failure?.replay).toMatch(/--property gpu-decode-equals-forward --seed 4 --path/);
  });

  it('fails a rule whose state grows exponentially (state-bounded), naming the growth rate', async () => {
    const text = readFileSync('test/fixtures/unbounded.rule', 'utf8');
    const res = await fuzzRule(text, 'unbounded.rule', { property: 'state-bounded', runs: 3, seed: 1 });
    expect(res.ok).toBe(false);
    const f = res.entries[0].report.failure;
    expect(f?.message).toMatch(/the state grows exponentially: ln ‖S‖ grows [0-9.]+e-\d+ per token .*float32/);
    expect(f?.replay).toMatch(/--property state-bounded --seed 1 --path/);
  });

  it('takes --sizes like check and records it in the JSON report; refuses an unknown size', async () => {
    const out = captureLog();
    expect(await run(['rules/gla.rule', '--sizes', 'medium', '--property', 'gpu-equals-reference', '--runs', '3', '--seed', '5', '--json'])).toBe(0);
    const rep = JSON.parse(out());
    expect(rep).toMatchObject({ command: 'fuzz', sizes: 'medium', baseSeed: 5, shardCount: 1, shards: [1] });
    expect(rep.entries[0].report.cases).toBe(3);
    await expect(run(['rules/gla.rule', '--sizes', 'huge'])).rejects.toThrow("momlab fuzz: --sizes must be one of small, medium, large, got 'huge'");
  });

  it('prints the generated WGSL with --emit-wgsl', async () => {
    const out = captureLog();
    expect(await run(['rules/rwkv7.rule', '--emit-wgsl'])).toBe(0);
    const wgsl = out();
    expect(wgsl).toMatch(/@compute @workgroup_size/);
    // Lines of the rule are cited by number only: no text of a rule file reaches generated code.
    expect(wgsl).toMatch(/\/\/ line \d+\n/);
    expect(wgsl).not.toMatch(/diag\(exp\(g\)\)/);
  });

  it('refuses a bad rule file, a missing file and an unknown property with typed errors', async () => {
    await expect(run(['rules/does-not-exist.rule'])).rejects.toThrow(FormatError);
    await expect(run(['rules/decay.rule', '--property', 'nope'])).rejects.toThrow(/unknown property 'nope'/);
    await expect(fuzzRule('state S[dk, dv]\ninputs k[dk]\nupdate S = S + k\noutput o = S\' * q', 'bad.rule')).rejects.toThrow(RuleError);
  });
});
