/**
 * The backward derived from a rule's text (issue 17 §2, §3, §6): for the five built-ins written as
 * rule files it equals the hand-written one; for every shipped rule file (and a rule using every
 * operation of the language) it equals central finite differences of the float64 forward; a wrong
 * derived backward is caught; max/min take the branch taken; exploding gradients are reported.
 *
 * Replay a property failure: MOMLAB_SEED=S MOMLAB_PATH=P npx vitest run test/rule-grad.test.ts -t '<property>'
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { momBackward } from '../reference/backward/mom.js';
import { backwardOf, hasBackward } from '../reference/backward/rules.js';
import { ruleFromText, type TextRule } from '../reference/rules/from-text.js';
import { RULE_NAMES } from '../reference/rules/index.js';
import { mulberry32 } from '../reference/sample.js';
import { SIZES } from '../properties/arbitraries.js';
import { assertProperty } from '../properties/assert.js';
import {
  gradientBounded,
  gradientDecodeEqualsOnePass,
  gradientDerivedEqualsHandWritten,
  gradientFdProperty,
  gradientFiniteDifferences,
  gradientMixBeforeEqualsAfter,
  measureGradientGrowth,
} from '../properties/gradients.js';
import { runProperty } from '../properties/runner.js';
import { measureGrowth, MAX_DEGREE } from '../properties/state-bounded.js';
import type { RuleTarget } from '../properties/types.js';

const FILE = 'test/rule-grad.test.ts';
const FILES = readdirSync('rules')
  .filter((f) => f.endsWith('.rule'))
  .map((f) => f.replace(/\.rule$/, ''));
const target = (name: string, ref: TextRule): RuleTarget => ({ name, ref });
const fromFile = (name: string) => target(name, ruleFromText(readFileSync(`rules/${name}.rule`, 'utf8'), { name, file: `rules/${name}.rule` }));
const fileTargets = FILES.map(fromFile);
const builtinFiles = fileTargets.filter((t) => (RULE_NAMES as readonly string[]).includes(t.name));

/**
 * Every operation of the rule language, smooth where inputs are drawn: max and min are tested
 * apart, and the norm is of S + 1 because norm(S) has a kink at the zero initial state that
 * finite differences cross.
 */
const EVERY_OP = `state S[dk, dv]
inputs k[dk], v[dv], g, a[dk], c
range k normalized
range g <= 0
range a in (0, 1)
range c in (0, 1)
let n = norm(S + 1) + 1
let w = silu(a) ./ (1 + softplus(a))
let z = sum(S) / (dk * dv + log(2 + abs(c)))
update S = diag(exp(g) * w) * S / n + (k .* sqrt(a + 1)) * tanh(v)' - sigmoid(c) * eye(dk) * S * z^2 / 10
update S = S + 0.1 * k * (v' - k' * S) / (1 + c^3)
output o = tanh(S' * q) .^ 2 + S' * q
`;

describe('derived backward (issue 17 §2)', () => {
  it('every shipped rule file and a rule using every operation have one', () => {
    expect(FILES.length).toBeGreaterThanOrEqual(9);
    for (const t of fileTargets) expect(hasBackward(t.ref), t.name).toBe(true);
    expect(builtinFiles.map((t) => t.name).sort()).toEqual([...RULE_NAMES].sort());
  });

  it(gradientDerivedEqualsHandWritten.id, async () => {
    const rep = await assertProperty(gradientDerivedEqualsHandWritten, builtinFiles, {}, { numRuns: 500, file: FILE });
    expect(rep.cases).toBeGreaterThanOrEqual(500);
    expect(rep.perRule.map((s) => s.rule).sort()).toEqual([...RULE_NAMES].sort());
    for (const s of rep.perRule) expect(s.cases, `cases for ${s.rule}`).toBeGreaterThan(0);
  });

  it('max and min send the gradient down the branch taken (the first argument on a tie)', () => {
    // S' = max(g, −0.5) S + min(c, 0.25) k vᵀ on one token, dk = dv = 1: dg and dc are the branch's.
    const rule = ruleFromText('state S[dk, dv]\ninputs k[dk], v[dv], g, c\nupdate S = max(g, -0.5) * S + min(c, 0.25) * k * v\'\noutput o = S\' * q', { name: 'kinks' });
    const back = backwardOf(rule);
    for (const [g, c, dgWant, dcWant] of [
      [-0.2, 0.1, 3, 0.5 * 0.75],
      [-0.9, 0.4, 0, 0],
      [-0.5, 0.25, 3, 0.5 * 0.75], // ties: max(g, −0.5) and min(c, 0.25) both take their first argument
    ]) {
      const dS = Float64Array.of(1);
      const dx = { k: new Float64Array(1), v: new Float64Array(1), g: new Float64Array(1), c: new Float64Array(1) };
      back.stepBack(Float64Array.of(3), { k: Float64Array.of(0.5), v: Float64Array.of(0.75), g, c }, dS, dx, { dk: 1, dv: 1 });
      expect([dx.g[0], dx.c[0]]).toEqual([dgWant, dcWant]);
      expect(dS[0]).toBe(Math.max(g, -0.5));
    }
  });

  it('norm has the subgradient 0 at zero (a zero state), not 0·∞', () => {
    const rule = ruleFromText("state S[dk, dv]\ninputs k[dk], v[dv]\nupdate S = S / (1 + norm(S)) + k * v'\noutput o = S' * q", { name: 'normed' });
    const dS = Float64Array.of(1, -2, 0.5, 3);
    const dx = { k: new Float64Array(2), v: new Float64Array(2) };
    rule.backward.stepBack(new Float64Array(4), { k: Float64Array.of(0.6, 0.8), v: Float64Array.of(1, 2) }, dS, dx, { dk: 2, dv: 2 });
    expect(Array.from(dS)).toEqual([1, -2, 0.5, 3]); // S/(1 + ‖S‖) at S = 0: identity plus the norm's term 0
  });
});

describe('finite differences of the float64 forward (issue 17 §3), every rule file', () => {
  const everyOp = target('every-op', ruleFromText(EVERY_OP, { name: 'every-op' }));
  for (const t of [...fileTargets, everyOp])
    it(`${gradientFiniteDifferences.id}: ${t.name}`, async () => {
      const rep = await assertProperty(gradientFiniteDifferences, [t], {}, { numRuns: 60, file: FILE });
      expect(rep.cases).toBeGreaterThanOrEqual(60);
    });

  for (const prop of [gradientMixBeforeEqualsAfter, gradientDecodeEqualsOnePass])
    it(`${prop.id}: every rule file it applies to`, async () => {
      const applicable = fileTargets.filter((t) => prop.applies(t));
      expect(applicable.length).toBeGreaterThanOrEqual(prop === gradientMixBeforeEqualsAfter ? 8 : 9);
      const rep = await assertProperty(prop, applicable, {}, { numRuns: 200, file: FILE });
      for (const s of rep.perRule) expect(s.cases, `cases for ${s.rule}`).toBeGreaterThan(0);
      expect(rep.perRule.length).toBe(applicable.length);
    });

  it('catches a wrong derived backward: rwkv7 differentiated as if its write were 2 k vᵀ', async () => {
    const text = readFileSync('rules/rwkv7.rule', 'utf8');
    const wrong = ruleFromText(text.replace("+ k * v'", "+ 2 * k * v'"), { name: 'rwkv7' });
    expect(wrong.jsSource.update).not.toBe((fileTargets.find((t) => t.name === 'rwkv7')!.ref as TextRule).jsSource.update);
    const prop = gradientFdProperty((rule, cfg, x, opts, up) => momBackward(rule, cfg, x, opts, up, wrong.backward));
    const rep = await runProperty(prop, [fromFile('rwkv7')], {}, { sizes: SIZES.small, numRuns: 20 });
    expect(rep.passed).toBe(false);
    expect(rep.failure?.message).toMatch(/memories\[\d\]\.k|shared\.k/);
  });
});

describe('gradient growth (issue 17 §6)', () => {
  it(`${gradientBounded.id}: every shipped rule file`, async () => {
    for (const t of fileTargets) {
      const rep = await assertProperty(gradientBounded, [t], {}, { numRuns: 3, file: FILE });
      expect(rep.perRule.map((s) => [s.rule, s.cases])).toEqual([[t.name, 3]]);
    }
  });

  it('reports a chaotic rule whose state stays bounded but whose gradient explodes', async () => {
    // The logistic map at r = 3.9 keeps every entry in (0, 1) and doubles small differences about every
    // two tokens: state-bounded passes, the reverse sweep's ‖dS‖ grows like e^{0.5 s}.
    const chaotic = target('logistic', ruleFromText("state S[dk, dv]\ninputs k[dk], v[dv]\nrange k normalized\nupdate S = 3.9 * S .* (1 - S) + 0.02 * (k .* k) * sigmoid(v)'\noutput o = S' * q", { name: 'logistic' }));
    const dims = { dk: 3, dv: 2 };
    expect(measureGrowth(chaotic.ref, dims, 2000, 1).degree).toBeLessThanOrEqual(MAX_DEGREE);
    const g = measureGradientGrowth(chaotic.ref, dims, 2000, 1);
    expect(g.ratePerToken).toBeGreaterThan(0.1);
    const rep = await runProperty(gradientBounded, [chaotic], {}, { sizes: SIZES.small, numRuns: 2 });
    expect(rep.passed).toBe(false);
    expect(rep.failure?.message).toMatch(/the state gradient explodes: counting tokens back from the last, .*(ln ‖dS‖ grows|not finite)/);
  });

  it('measures polynomial growth for linear (dS sums T outer products) and none for a decaying rule', () => {
    const seed = mulberry32(9)() * 1000;
    const linear = measureGradientGrowth(fromFile('linear').ref, { dk: 4, dv: 3 }, 3000, Math.floor(seed));
    expect(linear.degree).toBeGreaterThan(0.2);
    expect(linear.degree).toBeLessThanOrEqual(MAX_DEGREE);
    const decay = measureGradientGrowth(fromFile('decay').ref, { dk: 4, dv: 3 }, 3000, Math.floor(seed));
    expect(decay.degree).toBeLessThan(0.5);
  });
});
