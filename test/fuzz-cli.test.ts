/**
 * `momlab fuzz`: proof that the suite can fail. A rule with a non-linear read-out must show the
 * mixing property failing with a counterexample and a replay command; a GPU compile with a
 * sign flip injected (test-only hook) must be caught by gpu-equals-reference.
 */
import { readFileSync } from 'node:fs';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { getGpu } from '../gpu/device.js';
import { ConfigError, RuleError } from '../reference/errors.js';
import { fuzzRule, run } from '../src/cli/fuzz.js';

beforeAll(async () => {
  await getGpu(); // keeps Dawn's instance alive for the whole file
});

function captureLog(): () => string {
  const lines: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
  return () => {
    spy.mockRestore();
    return lines.join('\n');
  };
}
afterEach(() => vi.restoreAllMocks());

describe('momlab fuzz', () => {
  it('reports the mixing identity failing for a non-linear read-out, with a counterexample and replay', async () => {
    const out = captureLog();
    const code = await run(['rules/nonlinear-readout.rule', '--property', 'mix-before-equals-after', '--runs', '30', '--seed', '7']);
    const text = out();
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

  it('passes every property on a shipped rule and exits 0 (JSON report)', async () => {
    const out = captureLog();
    const code = await run(['rules/hgrn2.rule', '--runs', '4', '--seed', '11', '--json']);
    const rep = JSON.parse(out());
    expect(rep.entries.map((e: { report: { property: string } }) => e.report.property)).toEqual([
      'gpu-equals-reference',
      'mix-before-equals-after',
      'decode-equals-forward',
      'state-size-constant',
      'state-finite',
    ]);
    expect(rep.entries.every((e: { ok: boolean; report: { cases: number } }) => e.ok && e.report.cases > 0)).toBe(true);
    expect(code).toBe(0);
  });

  it('prints the generated WGSL with --emit-wgsl', async () => {
    const out = captureLog();
    expect(await run(['rules/rwkv7.rule', '--emit-wgsl'])).toBe(0);
    const wgsl = out();
    expect(wgsl).toMatch(/@compute @workgroup_size/);
    expect(wgsl).toMatch(/\/\/ line \d+: update S = diag\(exp\(g\)\) \* S/);
  });

  it('refuses a bad rule file, a missing file and an unknown property with typed errors', async () => {
    await expect(run(['rules/does-not-exist.rule'])).rejects.toThrow(ConfigError);
    await expect(run(['rules/decay.rule', '--property', 'nope'])).rejects.toThrow(/unknown property 'nope'/);
    await expect(fuzzRule('state S[dk, dv]\ninputs k[dk]\nupdate S = S + k\noutput o = S\' * q', 'bad.rule')).rejects.toThrow(RuleError);
  });
});
