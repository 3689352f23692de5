/**
 * `momlab check` end to end: a short run exits 0 and prints the table (and valid JSON with
 * --json); the `layer` pseudo-rule runs the layer properties; an unknown rule or property exits
 * non-zero and names it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RULE_NAMES } from '../reference/rules/index.js';

function momlab(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/momlab.js', ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('momlab check', () => {
  it('a short run on two rules exits 0 with the table', () => {
    const r = momlab('check', '--rules', 'linear,gated-delta', '--runs', '3', '--seed', '5');
    expect(r.stderr).toContain('seed 5');
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^property\s+rule\s+cases\s+worst err\s+max abs\s+tolerance\s+result$/);
    for (const id of ['chunked-equals-recurrent', 'gpu-equals-reference', 'gpu-decode-equals-forward']) {
      for (const rule of ['linear', 'gated-delta']) expect(r.stdout).toMatch(new RegExp(`^${id}\\s+${rule}\\s+3\\s.*pass$`, 'm'));
    }
    // rule-independent properties run once
    expect(r.stdout).toMatch(/^routing-invariants\s+any\s+3\s.*pass$/m);
    expect(r.stdout).not.toMatch(/FAIL/);
    expect(r.stdout).toMatch(/all \d+ passed \(seed 5\)/);
  });

  it('--json prints the table as JSON', () => {
    const r = momlab('check', '--rules', 'delta', '--property', 'gpu-equals-reference,routing-invariants', '--runs', '4', '--json');
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { passed: boolean; rows: { property: string; rule: string; cases: number; passed: boolean; worstErrRatio: number }[] };
    expect(out.passed).toBe(true);
    expect(out.rows.map((x) => `${x.property}/${x.rule}/${x.cases}`)).toEqual(['routing-invariants/any/4', 'gpu-equals-reference/delta/4']);
    expect(out.rows[1].worstErrRatio).toBeGreaterThan(0);
  });

  it("the layer pseudo-rule runs the layer properties, one row each, and replays with --rules layer", () => {
    const r = momlab('check', '--rules', 'layer', '--runs', '3', '--seed', '9');
    expect(r.status, r.stdout + r.stderr).toBe(0);
    for (const id of ['layer-decode', 'layer-mixing', 'gpu-layer']) expect(r.stdout).toMatch(new RegExp(`^${id}\\s+layer\\s+3\\s.*pass$`, 'm'));
    // no rule property runs without a rule; no layer property runs on a rule
    expect(r.stdout.split('\n').filter((l) => /\spass$/.test(l))).toHaveLength(3);
    const j = momlab('check', '--rules', 'linear', '--property', 'gpu-layer,gpu-equals-reference', '--runs', '2', '--json');
    expect(j.status, j.stderr).toBe(0);
    expect((JSON.parse(j.stdout) as { rows: { property: string; rule: string }[] }).rows.map((x) => `${x.property}/${x.rule}`)).toEqual(['gpu-equals-reference/linear']);
    const none = momlab('check', '--rules', 'linear', '--property', 'gpu-layer');
    expect(none.status).not.toBe(0);
    expect(none.stderr).toMatch(/gpu-layer applies to .*--rules layer/);
    expect(momlab('check', '--help').stdout + momlab('check', '--help').stderr).toMatch(/properties of 'layer':\n\s+layer-decode/);
  });

  it('an unknown rule exits non-zero and names it', () => {
    const r = momlab('check', '--rules', 'linear,nope');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("unknown rule 'nope'");
    expect(r.stderr).toContain(RULE_NAMES.join(', '));
    expect(r.stderr).toContain(', layer (the fla-compatible layer), or the path of a .rule file');
  });

  it('a failure writes its whole case to --failures DIR, with the rule file hashed, and --replay reruns it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'momlab-check-'));
    const rule = join(dir, 'nl.rule');
    // the factor along k is 1 - 4b, in (-3, 1): the state grows without bound (state-bounded fails)
    writeFileSync(rule, "state S[dk, dv]\ninputs k[dk], v[dv], b\nrange k normalized\nrange b in (0, 1)\nupdate S = S + 4 * b * k * (v' - k' * S)\noutput o = S' * q\n");
    const r = momlab('check', '--rules', rule, '--property', 'state-bounded', '--runs', '3', '--seed', '1', '--failures', join(dir, 'f'));
    expect(r.status, r.stderr).toBe(1);
    const file = join(dir, 'f', 'state-bounded-text_nl-1.json');
    expect(r.stdout).toContain(`state-bounded text:nl: npx momlab check --replay ${file}`);
    expect(r.stderr).toContain(`whole case: ${file}`);
    const text = readFileSync(file, 'utf8');
    const meta = JSON.parse(text) as { ruleSpec: string; ruleFile: { path: string; sha256: string }; case: unknown };
    expect(meta.ruleFile).toEqual({ path: rule, sha256: createHash('sha256').update(readFileSync(rule)).digest('hex') });
    expect(meta.case).toMatchObject({ T: expect.any(Number), dk: expect.any(Number), seed: expect.any(Number) });
    const again = momlab('check', '--replay', file);
    expect(again.status).toBe(1);
    expect(again.stdout).toMatch(/replayed 'state-bounded' on text:nl .*: FAILS\n.*\n  the state grows exponentially/);
    expect(momlab('check', '--replay', file, '--rules', 'linear').stderr.trim()).toBe('momlab check: --replay runs the case in the file as recorded; it takes no --rules');
  });

  it('an unknown property exits non-zero and names it', () => {
    const r = momlab('check', '--property', 'gpu-magic');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("unknown property 'gpu-magic'");
  });
});
