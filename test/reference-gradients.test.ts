/**
 * The float64 reference backward (issue 17 §1, §3): closed forms on tiny cases, the router's
 * backward, the gradient properties over every built-in rule, awkward sizes one by one, and
 * deliberately wrong backwards that the finite-difference property must catch.
 *
 * Replay a property failure: MOMLAB_SEED=S MOMLAB_PATH=P npx vitest run test/reference-gradients.test.ts -t '<property>'
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { momBackward, type MomGradients } from '../reference/backward/mom.js';
import { routeTokenBack } from '../reference/backward/router.js';
import { deltaBack } from '../reference/backward/delta.js';
import { gatedDeltaBack } from '../reference/backward/gated-delta.js';
import type { RuleBackward } from '../reference/backward/common.js';
import { ConfigError, ShapeError } from '../reference/errors.js';
import { emptyState } from '../reference/mom.js';
import { route, routeToken } from '../reference/router.js';
import { BUILTIN_RULES, RULE_NAMES } from '../reference/rules/index.js';
import { mulberry32 } from '../reference/sample.js';
import type { CoreConfig } from '../reference/types.js';
import { coreInputsArb, coreStateArb, starve, type SizeRanges } from '../properties/arbitraries.js';
import { assertProperty } from '../properties/assert.js';
import { gradientBounded, gradientDecodeEqualsOnePass, gradientDerivedEqualsHandWritten, gradientFdProperty, gradientFiniteDifferences, GRADIENT_PROPERTIES, type BackwardFn, type GradientCase } from '../properties/gradients.js';
import { runProperty } from '../properties/runner.js';
import type { RuleTarget } from '../properties/types.js';

const FILE = 'test/reference-gradients.test.ts';
const targets: RuleTarget[] = RULE_NAMES.map((name) => ({ name, ref: BUILTIN_RULES[name], chunked: BUILTIN_RULES[name] }));

function rand(seed: number): (n: number) => Float64Array {
  const r = mulberry32(seed);
  return (n) => Float64Array.from({ length: n }, () => 2 * r() - 1);
}

describe('closed forms', () => {
  it('linear, one token, one memory: dq = s S₁ do, dS₀ = dk-side = dS_T + s q doᵀ', () => {
    const dk = 2, dv = 3, s = 0.7;
    const cfg: CoreConfig = { B: 1, T: 1, H: 1, E: 1, topk: 1, dk, dv, shared: false, scale: s };
    const r = rand(5);
    const [q, k, v, S0, dO, dST] = [r(dk), r(dk), r(dv), r(dk * dv), r(dv), r(dk * dv)];
    const g = momBackward(BUILTIN_RULES.linear, cfg, { q, logits: r(1), memories: [{ k, v }], shared: null }, { initial: { routed: S0, shared: null } }, { do: dO, dfinal: { routed: dST, shared: null } });
    // S₁ = S₀ + k vᵀ, o = S₁ᵀ(s q); the reverse state before the update is G = dS_T + s q doᵀ.
    const S1 = S0.map((x, at) => x + k[Math.floor(at / dv)] * v[at % dv]);
    const G = dST.map((x, at) => x + s * q[Math.floor(at / dv)] * dO[at % dv]);
    for (let i = 0; i < dk; i++) {
      let dq = 0, dki = 0;
      for (let j = 0; j < dv; j++) {
        dq += s * S1[i * dv + j] * dO[j];
        dki += G[i * dv + j] * v[j];
      }
      expect(g.dq[i]).toBeCloseTo(dq, 14);
      expect(g.dmemories[0].k[i]).toBeCloseTo(dki, 14);
    }
    for (let j = 0; j < dv; j++) {
      let dvj = 0;
      for (let i = 0; i < dk; i++) dvj += G[i * dv + j] * k[i];
      expect(g.dmemories[0].v[j]).toBeCloseTo(dvj, 14);
    }
    for (let at = 0; at < dk * dv; at++) expect(g.dinitial.routed[at]).toBeCloseTo(G[at], 14);
    expect(Array.from(g.dlogits)).toEqual([0]); // top-1: the weight is 1 whatever the logits
  });

  it('the router backward is the softmax over the selected logits: dz_e = w_e (dw_e − ⟨w, dw⟩) on I, 0 off I', () => {
    const r = rand(11);
    for (let c = 0; c < 50; c++) {
      const E = 2 + (c % 6);
      const topk = 1 + (c % E);
      const z = r(E).map((x) => 3 * x);
      const { probs, indices, weights } = routeToken(z, topk);
      const dw = r(topk);
      const dz = new Float64Array(E);
      routeTokenBack(probs, indices, dw, dz);
      const wdw = weights.reduce((a, w, j) => a + w * dw[j], 0);
      const expected = new Float64Array(E);
      indices.forEach((e, j) => (expected[e] = weights[j] * (dw[j] - wdw)));
      for (let e = 0; e < E; e++) expect(Math.abs(dz[e] - expected[e])).toBeLessThan(1e-15);
    }
  });
});

describe('input checks', () => {
  const cfg: CoreConfig = { B: 1, T: 2, H: 1, E: 2, topk: 1, dk: 2, dv: 2, shared: false };
  const r = rand(3);
  const x = { q: r(4), logits: r(4), memories: [{ k: r(4), v: r(4) }, { k: r(4), v: r(4) }], shared: null };
  const up = { do: r(4), dfinal: { routed: r(8), shared: null } };
  it('refuses a rule without a reference backward, naming it', () => {
    // A hand-made Rule object: neither a built-in nor written as math (those derive one: test/rule-grad.test.ts).
    const mine = { ...BUILTIN_RULES.linear, name: 'mine' };
    expect(() => momBackward(mine, cfg, x, {}, up)).toThrow(ConfigError);
    expect(() => momBackward(mine, cfg, x, {}, up)).toThrow(/rule 'mine' has no reference backward/);
  });
  it('refuses upstream gradients of the wrong shape, naming them', () => {
    expect(() => momBackward(BUILTIN_RULES.linear, cfg, x, {}, { ...up, do: r(3) })).toThrow(ShapeError);
    expect(() => momBackward(BUILTIN_RULES.linear, cfg, x, {}, { ...up, do: r(3) })).toThrow(/upstream do must have length/);
    expect(() => momBackward(BUILTIN_RULES.linear, cfg, x, {}, { ...up, dfinal: { routed: r(7), shared: null } })).toThrow(/upstream dfinal.routed/);
  });
});

describe('gradient properties (issue 17 §3)', () => {
  // The derived-backward and gradient-growth properties run in test/rule-grad.test.ts.
  for (const prop of GRADIENT_PROPERTIES.filter((p) => p !== gradientDerivedEqualsHandWritten && p !== gradientBounded)) {
    it(prop.id, async () => {
      // Rules are drawn inside the case: 300 cases (~60 per rule) cover all five.
      const rep = await assertProperty(prop, targets, {}, { numRuns: 300, file: FILE });
      expect(rep.cases).toBeGreaterThanOrEqual(300);
      for (const s of rep.perRule) expect(s.cases, `cases for ${s.rule}`).toBeGreaterThan(0);
      expect(rep.perRule.map((s) => s.rule).sort()).toEqual([...RULE_NAMES].sort());
    });
  }
});

describe('awkward sizes, one by one, every rule', () => {
  const awkward: { what: string; cfg: CoreConfig; starved?: number; initial: boolean }[] = [
    { what: 'T = 1', cfg: { B: 1, T: 1, H: 1, E: 3, topk: 2, dk: 3, dv: 2, shared: true }, initial: true },
    { what: 'a memory with no token, T = 7', cfg: { B: 1, T: 7, H: 1, E: 4, topk: 2, dk: 3, dv: 5, shared: false }, starved: 2, initial: false },
    { what: 'k = E', cfg: { B: 1, T: 5, H: 2, E: 3, topk: 3, dk: 4, dv: 3, shared: false }, initial: true },
    { what: 'B > 1, H > 1, shared, random initial state', cfg: { B: 2, T: 9, H: 3, E: 3, topk: 1, dk: 2, dv: 3, shared: true }, starved: 0, initial: true },
  ];
  for (const name of RULE_NAMES)
    for (const a of awkward)
      it(`${name}: ${a.what}`, () => {
        const rule = BUILTIN_RULES[name];
        const target = targets.find((t) => t.name === name)!;
        const seed = 1000 + RULE_NAMES.indexOf(name) * 10 + awkward.indexOf(a);
        const [x] = fc.sample(coreInputsArb(rule.inputs, a.cfg, { logits: 'distinct', starve: false }), { numRuns: 1, seed });
        if (a.starved !== undefined) starve(x.logits, a.cfg.E, a.starved);
        const [initial] = a.initial ? fc.sample(coreStateArb(a.cfg), { numRuns: 1, seed }) : [undefined];
        const c: GradientCase = { cfg: a.cfg, x, ...(initial ? { initial } : {}), mix: 'after', seed };
        for (const mix of ['after', 'before'] as const) {
          const out = gradientFiniteDifferences.check({}, target, { ...c, mix }) as { ok: boolean; message?: string };
          expect(out.ok, out.message).toBe(true);
        }
        const cuts = a.cfg.T > 2 ? [1, a.cfg.T - 1] : [];
        const dec = gradientDecodeEqualsOnePass.check({}, target, { ...c, feeding: { kind: 'pieces', cuts } }) as { ok: boolean; message?: string };
        expect(dec.ok, dec.message).toBe(true);

        if (a.starved !== undefined && a.cfg.topk < a.cfg.E) {
          // The starved memory really gets no token: its inputs have zero gradient and its state's
          // gradient passes through unchanged.
          const { indices } = route(x.logits, a.cfg.B, a.cfg.T, a.cfg.E, a.cfg.topk);
          expect(indices.includes(a.starved)).toBe(false);
          const up = { do: rand(seed)(a.cfg.B * a.cfg.T * a.cfg.H * a.cfg.dv), dfinal: { routed: rand(seed + 1)(a.cfg.E * a.cfg.B * a.cfg.H * a.cfg.dk * a.cfg.dv), shared: a.cfg.shared ? rand(seed + 2)(a.cfg.B * a.cfg.H * a.cfg.dk * a.cfg.dv) : null } };
          const g: MomGradients = momBackward(rule, a.cfg, x, { initial }, up);
          for (const d of rule.inputs) expect(g.dmemories[a.starved][d.name].every((v) => v === 0)).toBe(true);
          const per = a.cfg.B * a.cfg.H * a.cfg.dk * a.cfg.dv;
          const at = a.starved * per;
          expect(Array.from(g.dinitial.routed.subarray(at, at + per))).toEqual(Array.from(up.dfinal.routed.subarray(at, at + per)));
        }
      });
});

describe('a wrong backward is caught by the finite-difference property', () => {
  // Small sizes, so that shrinking a failure stays quick.
  const tiny: SizeRanges = { B: [1, 2], T: [1, 6], H: [1, 2], topk: [1, 2], extraE: [0, 1], dk: [2, 3], dv: [2, 3], seqLen: [1, 6] };
  const withStep = (back: RuleBackward): BackwardFn => (rule, cfg, x, opts, up) => momBackward(rule, cfg, x, opts, up, back);
  const gd = targets.find((t) => t.name === 'gated-delta')!;
  const dl = targets.find((t) => t.name === 'delta')!;

  it('the decay left out of the reverse state (dS_{t-1} = dS̄ instead of α dS̄)', async () => {
    const noDecay: RuleBackward = {
      name: 'gated-delta',
      stepBack(S, x, dS, dx, dims) {
        gatedDeltaBack.stepBack(S, x, dS, dx, dims);
        const alpha = Math.exp(x.g as number);
        for (let i = 0; i < dS.length; i++) dS[i] /= alpha;
      },
    };
    const rep = await runProperty(gradientFdProperty(withStep(noDecay)), [gd], {}, { sizes: tiny, numRuns: 100, seed: 7 });
    expect(rep.passed).toBe(false);
    expect(rep.failure!.message).toMatch(/err ratio/);
  });

  it('the sign of dβ flipped', async () => {
    const flipped: RuleBackward = {
      name: 'delta',
      stepBack(S, x, dS, dx, dims) {
        const before = dx.beta[0];
        deltaBack.stepBack(S, x, dS, dx, dims);
        dx.beta[0] = before - (dx.beta[0] - before);
      },
    };
    const rep = await runProperty(gradientFdProperty(withStep(flipped)), [dl], {}, { sizes: tiny, numRuns: 100, seed: 7 });
    expect(rep.passed).toBe(false);
    expect(rep.failure!.message).toMatch(/d(memories\[\d+\]|shared)\.beta \(along/);
  });

  it('a gradient off by one part in a million (dq · (1 + 1e-6))', async () => {
    const off: BackwardFn = (rule, cfg, x, opts, up) => {
      const g = momBackward(rule, cfg, x, opts, up);
      g.dq = g.dq.map((v) => v * (1 + 1e-6));
      return g;
    };
    const rep = await runProperty(gradientFdProperty(off), [gd], {}, { sizes: tiny, numRuns: 100, seed: 7 });
    expect(rep.passed).toBe(false);
    expect(rep.failure!.message).toMatch(/^mix (after|before): dq \(along 2 random directions\): err ratio/);
  });
});

describe('the zero initial state is differentiated too', () => {
  it('momBackward without an initial state gives the same dinitial as with explicit zeros', () => {
    const rule = BUILTIN_RULES['gated-delta'];
    const cfg: CoreConfig = { B: 1, T: 4, H: 2, E: 2, topk: 1, dk: 3, dv: 2, shared: true };
    const [x] = fc.sample(coreInputsArb(rule.inputs, cfg, { logits: 'distinct' }), { numRuns: 1, seed: 4 });
    const r = rand(9);
    const up = { do: r(16), dfinal: { routed: r(24), shared: r(12) } };
    const a = momBackward(rule, cfg, x, {}, up);
    const b = momBackward(rule, cfg, x, { initial: emptyState(cfg) }, up);
    expect(Array.from(a.dinitial.routed)).toEqual(Array.from(b.dinitial.routed));
    expect(a.dinitial.routed.some((v) => v !== 0)).toBe(true);
  });
});
