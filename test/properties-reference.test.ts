/**
 * The reference properties of issue 2 (float64), every built-in rule, plus the comparison
 * metric and proof that the machinery reports a failure with a replayable, shrunk case.
 *
 * Replay a failure: MOMLAB_SEED=S MOMLAB_PATH=P npx vitest run test/properties-reference.test.ts -t '<property>'
 */
import { describe, expect, it } from 'vitest';
import { BUILTIN_RULES, RULE_NAMES } from '../reference/rules/index.js';
import type { BuiltinRule } from '../reference/rules/types.js';
import { SIZES } from '../properties/arbitraries.js';
import { assertProperty } from '../properties/assert.js';
import { compareArrays } from '../properties/compare.js';
import { runProperty } from '../properties/runner.js';
import { REFERENCE_PROPERTIES } from '../properties/reference.js';
import { refChunkedEqualsRecurrent } from '../properties/chunked-vs-recurrent.js';
import type { RuleTarget } from '../properties/types.js';

const FILE = 'test/properties-reference.test.ts';
const targets: RuleTarget[] = RULE_NAMES.map((name) => ({ name, ref: BUILTIN_RULES[name], chunked: BUILTIN_RULES[name] }));

describe('compareArrays (docs/spec.md §9)', () => {
  it('computes the error ratio and the max abs difference', () => {
    const c = compareArrays([3, 4], [3, 4.5]);
    // rms(ref − got) = sqrt(0.25/2), rms(ref) = sqrt(25/2): ratio ≈ 0.1 (the 1e-8 shows at 3e-10)
    expect(c.errRatio).toBe(Math.sqrt(0.125) / (Math.sqrt(12.5) + 1e-8));
    expect(c.maxAbs).toBe(0.5);
    expect(c.worstIndex).toBe(1);
    expect(c.pass(0.2)).toBe(true);
    expect(c.pass(0.05)).toBe(false);
  });
  it('passes outright within the absolute bound, whatever the ratio', () => {
    const c = compareArrays([1e-9, 0], [0, 1e-9]);
    expect(c.errRatio).toBeGreaterThan(0.05);
    expect(c.pass(1e-6)).toBe(true);
    expect(c.pass(1e-6, 0)).toBe(false);
  });
  it('fails on NaN, infinity or a length mismatch, whatever the tolerance', () => {
    expect(compareArrays([1, 2], [1, NaN]).pass(Infinity)).toBe(false);
    expect(compareArrays([1, Infinity], [1, 2]).pass(Infinity)).toBe(false);
    const short = compareArrays([1, 2], [1]);
    expect(short.pass(Infinity)).toBe(false);
    expect(short.broken).toMatch(/length mismatch/);
  });
});

describe('reference properties (issue 2)', () => {
  for (const prop of REFERENCE_PROPERTIES) {
    it(prop.id, async () => {
      // Rules are drawn inside the case: 500 cases (~100 per rule) cover all five.
      const rep = await assertProperty(prop, targets, {}, { numRuns: 500, file: FILE, timeLimitMs: 60_000 });
      expect(rep.cases).toBeGreaterThanOrEqual(500);
      if (prop.perRule) for (const s of rep.perRule) expect(s.cases, `cases for ${s.rule}`).toBeGreaterThan(0);
    });
  }
});

describe('a broken rule is caught, shrunk and replayable', () => {
  // A plausible bug: the chunked form forgets the outputs of a last, partial chunk.
  const real = BUILTIN_RULES['gated-delta'];
  const broken: BuiltinRule = {
    ...real,
    chunked(seq, S, C) {
      const o = real.chunked(seq, S, C);
      const r = seq.n % C;
      if (r) o.fill(0, (seq.n - r) * seq.dv);
      return o;
    },
  };
  const target: RuleTarget = { name: 'broken', ref: broken, chunked: broken };

  it('fails with the seed, the path, a shrunk case and a replay command', async () => {
    const rep = await runProperty(refChunkedEqualsRecurrent, [target], {}, { sizes: SIZES.small, sizeName: 'small', numRuns: 200, seed: 42 });
    expect(rep.passed).toBe(false);
    const f = rep.failure!;
    expect(f.message).toMatch(/^o: err ratio/);
    expect(f.replay).toBe(`npx momlab check --property chunked-equals-recurrent --rules broken --sizes small --seed 42 --path ${f.path}`);
    // Shrunk: the smallest failing case has a partial last chunk, n = C + 1 or n < C.
    const shrunk = f.shrunk as { n: number; C: number; dk: number; dv: number };
    expect(shrunk.n % shrunk.C).not.toBe(0);
    expect(shrunk.dk).toBe(1);
    expect(shrunk.dv).toBe(1);
    // The replay runs exactly that case again, and it fails again.
    const again = await runProperty(refChunkedEqualsRecurrent, [target], {}, { sizes: SIZES.small, numRuns: 200, seed: f.seed, path: f.path });
    expect(again.passed).toBe(false);
    expect(again.failure!.shrunk).toEqual(f.shrunk);
  });
});
