/**
 * One rule registry (src/rules.ts): wherever a rule is named, a built-in name or the path of a rule
 * file written by hand (not shipped in rules/) is accepted and behaves the same; anything else is
 * refused with one line naming both kinds.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/main.js';
import { resolveRule } from '../src/rules.js';
import { getRule } from '../reference/rules/index.js';

async function momlab(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const status = await runCli(args, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } });
  return { status, stdout, stderr };
}

// Written here, not shipped: a forgetful linear memory with a clamped write strength.
const HANDMADE = `# a forgetful linear memory
state S[dk, dv]
inputs k[dk], v[dv], g, c
range k normalized
range g in [-3, -0.5]
range c in (0.25, 2)
update S = exp(g) * S + min(c, 1) * k * v'
output o = S' * q
`;

const dir = mkdtempSync(join(tmpdir(), 'momlab-rules-'));
const file = join(dir, 'forgetful.rule');
writeFileSync(file, HANDMADE);

describe('the rule registry', () => {
  it('resolves a built-in name to the built-in (reference, chunked form, GPU kernels)', async () => {
    const t = await resolveRule('gla', 'test');
    expect(t.ref).toBe(getRule('gla'));
    expect(t.chunked).toBe(t.ref);
    expect(t.gpu?.modes).toContain('chunk');
  });

  it('resolves a hand-written rule file to a text target with both compiles', async () => {
    const t = await resolveRule(file, 'test');
    expect(t.name).toBe('text:forgetful');
    expect(t.ref.inputs.map((d) => d.name)).toEqual(['k', 'v', 'g', 'c']);
    expect(t.gpu?.modes).toEqual(['recurrent']);
  });

  it('trace runs the file, showing its update line', async () => {
    const r = await momlab('trace', '--rule', file, '--tokens', '3', '--dk', '3', '--dv', '2', '--json');
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0].config.formula).toBe("update S = exp(g) * S + min(c, 1) * k * v'");
    expect(lines[1].memories[0].extra.c).toBeGreaterThan(0.25);
  });

  it('check runs the file through the reference and GPU properties that apply, and passes', async () => {
    const r = await momlab('check', '--rules', file, '--property', 'mix-before-equals-after,state-bounded,gpu-equals-reference', '--runs', '3', '--seed', '9', '--json');
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout).rows as { property: string; rule: string; cases: number; passed: boolean }[];
    expect(rows.map((x) => `${x.property}/${x.rule}/${x.cases}/${x.passed}`)).toEqual([
      'mix-before-equals-after/text:forgetful/3/true',
      'state-bounded/text:forgetful/3/true',
      'gpu-equals-reference/text:forgetful/3/true',
    ]);
  });

  it('check fails the unbounded fixture on state-bounded, exit 1', async () => {
    const r = await momlab('check', '--rules', 'test/fixtures/unbounded.rule', '--property', 'state-bounded', '--runs', '3', '--seed', '2');
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/state-bounded\s+text:unbounded\s.*FAIL/);
    expect(r.stderr).toMatch(/grows exponentially/);
    // the replay command names the file, as given
    expect(r.stderr).toMatch(/npx momlab check --property state-bounded --rules test\/fixtures\/unbounded\.rule --sizes small --seed 2 --path [\d:]+/);
  });

  it('bench measures the file: reference steps/s and its GPU forward (figures not judged)', async () => {
    const r = await momlab('bench', '--rule', file);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\| text:forgetful reference, dk = dv = 64 \| [\d,]+ token-head steps\/s/);
    expect(r.stdout).toMatch(/\| text:forgetful GPU forward recurrent, B 1 T 256 .* \| [\d.e+-]+ ms/);
  });

  it('refuses an unknown name and a missing file with one line each', async () => {
    const unknown = await momlab('trace', '--rule', 'gated_delta');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr.trim().split('\n')).toHaveLength(1);
    expect(unknown.stderr).toMatch(/unknown rule 'gated_delta'; give a built-in \(linear, .*\) or the path of a \.rule file/);
    const missing = await momlab('check', '--rules', join(dir, 'nope.rule'));
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/cannot read rule file/);
  });
});
