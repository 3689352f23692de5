/**
 * Bad input to the reference gets a typed error (reference/errors.ts) whose message names the
 * problem: never a crash, a hang, or a silently wrong answer.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, ShapeError } from '../reference/errors.js';
import { emptyState, gatherTokens, momForward, momGathered, validateCore } from '../reference/mom.js';
import { route, routeToken } from '../reference/router.js';
import { BUILTIN_RULES, getRule, RULE_NAMES } from '../reference/rules/index.js';
import { sampleCoreInputs } from '../reference/sample.js';
import { MomState } from '../reference/state.js';
import { traceSteps } from '../reference/trace.js';
import type { HeadSequence } from '../reference/rules/types.js';
import type { CoreConfig, CoreInputs, Rule } from '../reference/types.js';

const rule = BUILTIN_RULES['gated-delta'];
const base: CoreConfig = { B: 2, T: 5, H: 2, E: 3, topk: 2, dk: 3, dv: 2, shared: true };
const sample = (cfg: CoreConfig = base): CoreInputs => sampleCoreInputs(rule, cfg, 3);

/** `f` throws an instance of `type` whose message matches every pattern. */
function expectError(f: () => unknown, type: typeof ConfigError | typeof ShapeError, ...patterns: RegExp[]): void {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected an error').toBeInstanceOf(type);
  for (const p of patterns) expect((caught as Error).message).toMatch(p);
}

describe('configuration errors', () => {
  it('k outside 1..E', () => {
    expectError(() => routeToken([0, 1, 2], 0), ConfigError, /top-k/, /E = 3/, /k = 0/);
    expectError(() => routeToken([0, 1, 2], 4), ConfigError, /1 <= k <= E = 3/, /k = 4/);
    expectError(() => routeToken([0, 1, 2], 1.5), ConfigError, /k = 1.5/);
    expectError(() => momForward(rule, { ...base, topk: 4 }, sample()), ConfigError, /k = 4/);
    expectError(() => new MomState(rule, { ...base, topk: 0 }), ConfigError, /k = 0/);
  });

  it('non-positive or non-integer sizes name the size', () => {
    for (const name of ['B', 'T', 'H', 'E', 'dk', 'dv'] as const)
      for (const bad of [0, -1, 2.5, Number.NaN])
        expectError(() => validateCore(rule, { ...base, [name]: bad }, sample()), ConfigError, new RegExp(`config\\.${name} must be a positive integer`));
    expectError(() => route(new Float64Array(6), 0, 2, 3, 1), ConfigError, /B must be a positive integer/);
  });

  it('unknown rule names the known ones', () => {
    expectError(() => getRule('gated-delta-2'), ConfigError, /unknown rule 'gated-delta-2'/, new RegExp(RULE_NAMES.join(', ')));
  });

  it('bad chunk sizes, and a chunk size for a rule without a chunked form', () => {
    const x = sample();
    for (const C of [0, -2, 1.5]) {
      expectError(() => momGathered(rule, base, x, { chunk: C }), ConfigError, /chunk size must be an integer >= 1/);
      expectError(() => rule.chunked({ n: 1, dk: 1, dv: 1, q: new Float64Array(1), inputs: {} }, new Float64Array(1), C), ConfigError, /chunk size/);
    }
    // A rule with only step/read (as rules written as math are) has no chunked form.
    const plain: Rule = { name: 'plain', inputs: rule.inputs, readLinear: true, step: rule.step, read: rule.read };
    expectError(() => momGathered(plain, base, x, { chunk: 16 }), ConfigError, /rule 'plain' has no chunked form/);
    expect(momGathered(plain, base, x).o.length).toBe(2 * 5 * 2 * 2); // without a chunk size it runs
  });

  it('other bad settings', () => {
    expectError(() => momForward(rule, base, sample(), { mix: 'sideways' as 'after' }), ConfigError, /mix must be 'after' or 'before'/);
    expectError(() => validateCore(rule, { ...base, scale: Number.POSITIVE_INFINITY }, sample()), ConfigError, /config\.scale/);
    expectError(() => validateCore(rule, { ...base, shared: 'yes' as unknown as boolean }, sample()), ConfigError, /config\.shared/);
    expectError(() => traceSteps(rule, base, sample()), ConfigError, /B = 1 and H = 1/, /B = 2, H = 2/);
    expectError(() => new MomState(rule, base).prefill(sample(), 0), ConfigError, /positive integer number of tokens/);
  });
});

describe('shape errors', () => {
  it('wrong lengths name the array and its expected shape', () => {
    const x = sample();
    expectError(() => momForward(rule, base, { ...x, q: new Float64Array(7) }), ShapeError, /inputs\.q/, /\[B, T, H, dk\] = \[2, 5, 2, 3\]/, /= 60, got 7/);
    expectError(() => momForward(rule, base, { ...x, logits: new Float64Array(29) }), ShapeError, /inputs\.logits/, /= 30, got 29/);
    const short = { ...x.memories[1], v: new Float64Array(39) };
    expectError(() => momForward(rule, base, { ...x, memories: [x.memories[0], short, x.memories[2]] }), ShapeError, /inputs\.memories\[1\]\.v/, /= 40, got 39/);
    expectError(() => momForward(rule, base, { ...x, memories: x.memories.slice(0, 2) }), ShapeError, /E = 3/, /got 2 entries/);
  });

  it('missing and extra inputs name the input and the rule', () => {
    const x = sample();
    const { beta: _beta, ...noBeta } = x.memories[0];
    expectError(() => momForward(rule, base, { ...x, memories: [noBeta, ...x.memories.slice(1)] }), ShapeError, /memories\[0\] is missing input 'beta'/, /gated-delta/);
    expectError(() => momForward(rule, base, { ...x, shared: { ...x.shared!, alpha: new Float64Array(20) } }), ShapeError, /inputs\.shared has an extra input 'alpha'/);
  });

  it('shared inputs present iff config.shared', () => {
    const x = sample();
    expectError(() => momForward(rule, base, { ...x, shared: null }), ShapeError, /inputs\.shared is missing/);
    expectError(() => momForward(rule, { ...base, shared: false }, x), ShapeError, /inputs\.shared must be null/);
  });

  it('non-finite values name the array and the index', () => {
    const x = sample();
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const q = x.q.slice();
      q[17] = bad;
      expectError(() => momForward(rule, base, { ...x, q }), ShapeError, /inputs\.q has a non-finite value/, /index 17/);
      const g = x.memories[2].g.slice();
      g[3] = bad;
      expectError(() => momGathered(rule, base, { ...x, memories: [x.memories[0], x.memories[1], { ...x.memories[2], g }] }), ShapeError, /memories\[2\]\.g has a non-finite value/);
    }
    expectError(() => routeToken([0, Number.NaN], 1), ShapeError, /z\[1\] is not finite/);
  });

  it('arrays of the wrong type', () => {
    const x = sample();
    expectError(() => momForward(rule, base, { ...x, q: Array.from(x.q) as unknown as Float64Array }), ShapeError, /inputs\.q must be a Float64Array/, /got Array/);
    expectError(() => momForward(rule, base, { ...x, logits: new Float32Array(30) as unknown as Float64Array }), ShapeError, /got Float32Array/);
  });

  it('a state of the wrong size', () => {
    const x = sample();
    const s = emptyState(base);
    expectError(() => momForward(rule, base, x, { initial: { ...s, routed: new Float64Array(s.routed.length - 1) } }), ShapeError, /initial state\.routed/, /\[E, B, H, dk, dv\]/);
    expectError(() => momGathered(rule, base, x, { initial: { ...s, shared: null } }), ShapeError, /initial state\.shared/);
    expectError(() => new MomState(rule, { ...base, shared: false }, s), ShapeError, /initial state\.shared must be null/);
    const st = new MomState(rule, base);
    expectError(() => st.restore(emptyState({ ...base, dk: 4 })), ShapeError, /restored state\.routed/);
    // a failed restore leaves the state as it was
    expect(st.snapshot().routed.every((v) => v === 0)).toBe(true);
  });

  it('prefill with inputs for another length', () => {
    const st = new MomState(rule, base);
    expectError(() => st.prefill(sample(), 4), ShapeError, /inputs\.q/, /\[2, 4, 2, 3\]/);
    expect(st.tokensSeen).toBe(0);
  });
});

describe('whole-sequence calls of a rule (recurrent, chunked)', () => {
  const seq = (n: number): HeadSequence => ({
    n, dk: 2, dv: 3,
    q: new Float64Array(n * 2).fill(0.5),
    inputs: { k: new Float64Array(n * 2).fill(0.5), v: new Float64Array(n * 3).fill(1), g: new Float64Array(n).fill(-0.5), beta: new Float64Array(n).fill(0.5) },
  });
  const S = () => new Float64Array(6);

  it('wrong lengths, missing or extra inputs, a wrong state, non-finite values', () => {
    for (const run of [(x: HeadSequence, s: Float64Array) => rule.recurrent(x, s), (x: HeadSequence, s: Float64Array) => rule.chunked(x, s, 2)]) {
      expectError(() => run({ ...seq(3), q: new Float64Array(5) }, S()), ShapeError, /sequence q/, /\[n, dk\] = \[3, 2\]/, /got 5/);
      expectError(() => run({ ...seq(3), n: 4 }, S()), ShapeError, /sequence q/, /= 8, got 6/);
      expectError(() => run(seq(3), new Float64Array(5)), ShapeError, /state S/, /\[dk, dv\] = \[2, 3\]/);
      const { beta: _b, ...noBeta } = seq(3).inputs;
      expectError(() => run({ ...seq(3), inputs: noBeta }, S()), ShapeError, /missing input 'beta'/);
      expectError(() => run({ ...seq(3), inputs: { ...seq(3).inputs, a: new Float64Array(3) } }, S()), ShapeError, /extra input 'a'/);
      const g = seq(3).inputs.g;
      g[1] = Number.NaN;
      expectError(() => run({ ...seq(3), inputs: { ...seq(3).inputs, g } }, S()), ShapeError, /sequence input 'g' has a non-finite value/, /index 1/);
      expectError(() => run({ ...seq(3), n: -1 }, S()), ShapeError, /n must be an integer >= 0/);
    }
  });

  it('an empty sequence is fine: no outputs, the state unchanged', () => {
    const s = Float64Array.from([1, 2, 3, 4, 5, 6]);
    expect(rule.recurrent(seq(0), s).length).toBe(0);
    expect(rule.chunked(seq(0), s, 4).length).toBe(0);
    expect(Array.from(s)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('gatherTokens rejects a routing that does not fit', () => {
    const r = route(Float64Array.from([0, 1, 2, 2, 1, 0]), 1, 2, 3, 2);
    expect(gatherTokens(r, 1, 2, 3).map((perMemory) => perMemory.map((l) => Array.from(l)))).toEqual([[[1], [0, 1], [0]]]);
    expectError(() => gatherTokens(r, 1, 3, 3), ShapeError, /routing\.indices must have length B\*T\*topk/);
    expectError(() => gatherTokens(r, 1, 2, 2), ShapeError, /memory 2, outside 0\.\.E-1 = 0\.\.1/);
  });
});

describe('any single wrong length is caught, whatever the sizes', () => {
  // Random configurations and a random array shortened or lengthened by a random amount: the
  // error is a ShapeError that names the array that was changed.
  it('names the corrupted array', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...RULE_NAMES),
        fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 2 }),
        fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }),
        fc.boolean(), fc.nat(), fc.integer({ min: -3, max: 3 }).filter((d) => d !== 0),
        (name, B, T, H, E, dk, dv, shared, pick, delta) => {
          const r = BUILTIN_RULES[name];
          const cfg: CoreConfig = { B, T, H, E, topk: 1 + (pick % E), dk, dv, shared };
          const x = sampleCoreInputs(r, cfg, pick);
          const targets: [string, (a: Float64Array) => CoreInputs][] = [
            ['inputs.q', (a) => ({ ...x, q: a })],
            ['inputs.logits', (a) => ({ ...x, logits: a })],
          ];
          x.memories.forEach((m, e) =>
            r.inputs.forEach((d) => targets.push([`inputs.memories[${e}].${d.name}`, (a) => ({ ...x, memories: x.memories.map((mm, i) => (i === e ? { ...mm, [d.name]: a } : mm)) })])),
          );
          const [what, make] = targets[pick % targets.length];
          const original = what === 'inputs.q' ? x.q : what === 'inputs.logits' ? x.logits : x.memories[Number(/\[(\d+)\]/.exec(what)![1])][what.split('.').pop()!];
          const length = Math.max(0, original.length + delta);
          if (length === original.length) return;
          expectError(() => momForward(r, cfg, make(new Float64Array(length).fill(0.5))), ShapeError, new RegExp(what.replace(/[[\].]/g, '\\$&')));
        },
      ),
      { numRuns: 200 },
    );
  });
});
