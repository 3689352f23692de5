/**
 * state-bounded (properties/state-bounded.ts): a rule whose state grows exponentially fails with its
 * growth rate and the float32 overflow token; decaying rules and the shipped rule files pass; the
 * plain linear rule's polynomial growth passes with a note.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ruleFromText } from '../reference/rules/from-text.js';
import { getRule, RULE_NAMES } from '../reference/rules/index.js';
import { SIZES } from '../properties/arbitraries.js';
import { runProperty } from '../properties/runner.js';
import { measureGrowth, MAX_DEGREE, stateBounded } from '../properties/state-bounded.js';
import type { RuleTarget } from '../properties/types.js';

// A rule whose state grows exponentially (the factor along k ranges over (−3, 1)).
const UNBOUNDED = readFileSync('test/fixtures/unbounded.rule', 'utf8');

const POSITIVE_LINEAR = `# linear attention with positive keys and values
state S[dk, dv]
inputs k[dk], v[dv]
range k in (0, 1)
range v in (0, 1)
update S = S + k * v'
output o = S' * q
`;

const target = (name: string, text?: string): RuleTarget => ({ name, ref: text ? ruleFromText(text, { name }) : getRule(name) });

describe('state-bounded', () => {
  it('measures exponential growth of the unbounded rule: rate, degree and the float32 overflow token', () => {
    const g = measureGrowth(ruleFromText(UNBOUNDED, { name: 'unbounded' }), { dk: 4, dv: 3 }, 3000, 7);
    expect(g.degree).toBeGreaterThan(MAX_DEGREE);
    expect(g.ratePerToken).toBeGreaterThan(0.005);
    // float64 still holds it at 3000 tokens, float32 does not
    expect(g.nonFiniteAt).toBeUndefined();
    expect(g.overflowAt).toBeGreaterThan(0);
    expect(g.overflowAt).toBeLessThan(3000);
  });

  it('fails the unbounded rule through the property runner, naming the growth rate', async () => {
    const rep = await runProperty(stateBounded, [target('unbounded', UNBOUNDED)], {}, { sizes: SIZES.small, numRuns: 3, seed: 11 });
    expect(rep.passed).toBe(false);
    expect(rep.failure?.message).toMatch(/grows exponentially: ln ‖S‖ grows [0-9.e+-]+ per token/);
    expect(rep.failure?.message).toMatch(/float32/);
  });

  it('passes the five built-ins and every shipped rule file', async () => {
    const files = readdirSync('rules').filter((f) => f.endsWith('.rule') && f !== 'nonlinear-readout.rule');
    const targets = [...RULE_NAMES.map((n) => target(n)), ...files.map((f) => target(`file:${f}`, readFileSync(`rules/${f}`, 'utf8')))];
    expect(targets.length).toBeGreaterThanOrEqual(12);
    for (const t of targets) {
      const rep = await runProperty(stateBounded, [t], {}, { sizes: SIZES.small, numRuns: 2, seed: 5 });
      expect(rep.failure?.message, t.name).toBeUndefined();
      expect(rep.passed).toBe(true);
      expect(rep.cases).toBe(2);
    }
  });

  it('reads linear growth as degree 1 and passes it with a note; decaying rules do not grow', async () => {
    // all-positive keys and values: S_t = Σ k vᵀ grows like t
    const positive = POSITIVE_LINEAR;
    const lin = measureGrowth(ruleFromText(positive, { name: 'positive-linear' }), { dk: 5, dv: 3 }, 3000, 3);
    expect(lin.degree).toBeGreaterThan(0.8);
    expect(lin.degree).toBeLessThan(1.2);
    const rep = await runProperty(stateBounded, [target('positive-linear', positive)], {}, { sizes: SIZES.small, numRuns: 1, seed: 1 });
    expect(rep.passed).toBe(true);
    expect((await stateBounded.check({}, target('positive-linear', positive), { T: 3000, dk: 5, dv: 3, seed: 3 })).message).toMatch(/grows polynomially: .*degree 1\.0/);
    const gd = measureGrowth(getRule('gated-delta'), { dk: 5, dv: 3 }, 3000, 3);
    expect(Math.abs(gd.degree)).toBeLessThan(0.5);
  });
});
