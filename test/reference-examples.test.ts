/**
 * Worked examples: tiny cases whose expected numbers are derived by hand below (the arithmetic
 * is written out), not copied from the implementation. Each rule is checked in all its forms:
 * step + read, recurrent, and chunked with C = 1, 2, 3, 4 (C = 2 leaves a partial last chunk).
 *
 * Tolerance: the hand values are decimals (0.555, 0.07875, ...) that float64 cannot hold exactly,
 * and e^{ln 0.5} is not exactly 0.5; the largest difference measured over all examples here is
 * 8.9e-16 (4 float64 ulps at magnitude ~2). TOL = 1e-14 leaves ~10x headroom for the
 * reordered sums of the chunked forms, far below any real error (wrong values are off by > 1e-2).
 */
import { describe, expect, it } from 'vitest';
import { momForward, momGathered } from '../reference/mom.js';
import { route, routeToken } from '../reference/router.js';
import { BUILTIN_RULES, type RuleName } from '../reference/rules/index.js';
import type { HeadSequence } from '../reference/rules/types.js';
import { MomState } from '../reference/state.js';
import { traceSteps } from '../reference/trace.js';
import { sampleCoreInputs } from '../reference/sample.js';
import type { CoreConfig, CoreInputs } from '../reference/types.js';
import { widthOf } from '../reference/types.js';

const TOL = 1e-14;

function expectClose(got: ArrayLike<number>, want: number[], what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++)
    expect(Math.abs(got[i] - want[i]), `${what}[${i}]: got ${got[i]}, want ${want[i]}`).toBeLessThanOrEqual(TOL);
}

/**
 * The three tokens every rule example uses (dk = dv = 2, q already scaled):
 *   t0: k = [1, 0],     v = [1, 2],     q = [1, 0]
 *   t1: k = [0.6, 0.8], v = [2, -1],    q = [0, 1]      (|k| = 1: 0.36 + 0.64)
 *   t2: k = [0, 1],     v = [0.5, 0.5], q = [1, 1]
 * S is [dk][dv] (row i = key channel i), o = Sᵀq, so o = q0·row0 + q1·row1.
 */
const K = [1, 0, 0.6, 0.8, 0, 1];
const V = [1, 2, 2, -1, 0.5, 0.5];
const Q = [1, 0, 0, 1, 1, 1];

interface Example {
  gates: Record<string, number[]>;
  /** o_t for t = 0, 1, 2 and the final state, flattened row-major */
  o: number[];
  S: number[];
}

const EXAMPLES: Record<RuleName, Example> = {
  // S1 = k0 v0ᵀ = [[1, 2], [0, 0]]                          o0 = row0 = [1, 2]
  // S2 = S1 + k1 v1ᵀ = [[1 + 1.2, 2 − 0.6], [1.6, −0.8]]    o1 = row1 = [1.6, −0.8]
  // S3 = S2 + k2 v2ᵀ = [[2.2, 1.4], [1.6 + 0.5, −0.8 + 0.5]] o2 = row0 + row1 = [2.2 + 2.1, 1.4 − 0.3]
  linear: {
    gates: {},
    o: [1, 2, 1.6, -0.8, 2.2 + 2.1, 1.4 - 0.3],
    S: [2.2, 1.4, 2.1, -0.3],
  },
  // α = e^g = [0.5, 0.5, 0.25]
  // S1 = k0 v0ᵀ = [[1, 2], [0, 0]]                                   o0 = [1, 2]
  // S2 = 0.5 S1 + k1 v1ᵀ = [[0.5 + 1.2, 1 − 0.6], [1.6, −0.8]]        o1 = row1 = [1.6, −0.8]
  // S3 = 0.25 S2 + k2 v2ᵀ = [[0.425, 0.1], [0.4 + 0.5, −0.2 + 0.5]]   o2 = [0.425 + 0.9, 0.1 + 0.3]
  decay: {
    gates: { g: [Math.log(0.5), Math.log(0.5), Math.log(0.25)] },
    o: [1, 2, 1.6, -0.8, 0.425 + 0.9, 0.1 + 0.3],
    S: [0.425, 0.1, 0.9, 0.3],
  },
  // α per key channel: α0 = [0.5, 0.25], α1 = [1, 0.5], α2 = [0.5, 0.5]
  // S1 = k0 v0ᵀ = [[1, 2], [0, 0]] (decaying zeros)                         o0 = [1, 2]
  // S2 = diag(1, 0.5) S1 + k1 v1ᵀ = [[1 + 1.2, 2 − 0.6], [0 + 1.6, 0 − 0.8]]  o1 = [1.6, −0.8]
  // S3 = diag(0.5, 0.5) S2 + k2 v2ᵀ = [[1.1, 0.7], [0.8 + 0.5, −0.4 + 0.5]]   o2 = [1.1 + 1.3, 0.7 + 0.1]
  gla: {
    gates: { g: [Math.log(0.5), Math.log(0.25), 0, Math.log(0.5), Math.log(0.5), Math.log(0.5)] },
    o: [1, 2, 1.6, -0.8, 1.1 + 1.3, 0.7 + 0.1],
    S: [1.1, 0.7, 1.3, 0.1],
  },
  // β = [0.5, 0.5, 0.25]; u = β (v − Sᵀk), S ← S + k uᵀ
  // t0: Sᵀk0 = 0, u = 0.5 [1, 2] = [0.5, 1], S1 = [[0.5, 1], [0, 0]]                 o0 = [0.5, 1]
  // t1: S1ᵀk1 = 0.6 [0.5, 1] = [0.3, 0.6], u = 0.5 [1.7, −1.6] = [0.85, −0.8]
  //     S2 = [[0.5 + 0.6·0.85, 1 − 0.6·0.8], [0.8·0.85, −0.8·0.8]] = [[1.01, 0.52], [0.68, −0.64]]   o1 = [0.68, −0.64]
  // t2: S2ᵀk2 = row1 = [0.68, −0.64], u = 0.25 [−0.18, 1.14] = [−0.045, 0.285]
  //     S3 = [[1.01, 0.52], [0.68 − 0.045, −0.64 + 0.285]] = [[1.01, 0.52], [0.635, −0.355]]  o2 = [1.01 + 0.635, 0.52 − 0.355]
  delta: {
    gates: { beta: [0.5, 0.5, 0.25] },
    o: [0.5, 1, 0.68, -0.64, 1.01 + 0.635, 0.52 - 0.355],
    S: [1.01, 0.52, 0.635, -0.355],
  },
  // α = [0.5, 0.5, 0.25], β = [0.5, 0.5, 0.25]; S̄ = α S, u = β (v − S̄ᵀk), S ← S̄ + k uᵀ
  // t0: S̄ = 0, u = [0.5, 1], S1 = [[0.5, 1], [0, 0]]                                 o0 = [0.5, 1]
  // t1: S̄ = [[0.25, 0.5], [0, 0]], S̄ᵀk1 = 0.6 [0.25, 0.5] = [0.15, 0.3]
  //     u = 0.5 [2 − 0.15, −1 − 0.3] = [0.925, −0.65]
  //     S2 = [[0.25 + 0.6·0.925, 0.5 − 0.6·0.65], [0.8·0.925, −0.8·0.65]] = [[0.805, 0.11], [0.74, −0.52]]  o1 = [0.74, −0.52]
  // t2: S̄ = 0.25 S2 = [[0.20125, 0.0275], [0.185, −0.13]], S̄ᵀk2 = [0.185, −0.13]
  //     u = 0.25 [0.5 − 0.185, 0.5 + 0.13] = [0.07875, 0.1575]
  //     S3 = [[0.20125, 0.0275], [0.185 + 0.07875, −0.13 + 0.1575]] = [[0.20125, 0.0275], [0.26375, 0.0275]]
  //     o2 = [0.20125 + 0.26375, 0.0275 + 0.0275]
  'gated-delta': {
    gates: { g: [Math.log(0.5), Math.log(0.5), Math.log(0.25)], beta: [0.5, 0.5, 0.25] },
    o: [0.5, 1, 0.74, -0.52, 0.20125 + 0.26375, 0.0275 + 0.0275],
    S: [0.20125, 0.0275, 0.26375, 0.0275],
  },
};

const sequence = (gates: Record<string, number[]>): HeadSequence => ({
  n: 3,
  dk: 2,
  dv: 2,
  q: Float64Array.from(Q),
  inputs: { k: Float64Array.from(K), v: Float64Array.from(V), ...Object.fromEntries(Object.entries(gates).map(([n, a]) => [n, Float64Array.from(a)])) },
});

describe('worked examples, one per rule (dk = dv = 2, three tokens)', () => {
  for (const [name, ex] of Object.entries(EXAMPLES) as [RuleName, Example][]) {
    const rule = BUILTIN_RULES[name];
    it(`${name}: step + read`, () => {
      const seq = sequence(ex.gates);
      const S = new Float64Array(4);
      const o = new Float64Array(6);
      for (let t = 0; t < 3; t++) {
        const x: Record<string, Float64Array | number> = {};
        for (const d of rule.inputs) {
          const w = widthOf(d.width, seq);
          x[d.name] = d.width === 'scalar' ? seq.inputs[d.name][t] : seq.inputs[d.name].subarray(t * w, (t + 1) * w);
        }
        rule.step(S, x, seq);
        rule.read(S, seq.q.subarray(2 * t, 2 * t + 2), seq, o.subarray(2 * t, 2 * t + 2));
      }
      expectClose(o, ex.o, `${name} o`);
      expectClose(S, ex.S, `${name} S`);
    });
    it(`${name}: recurrent`, () => {
      const S = new Float64Array(4);
      expectClose(rule.recurrent(sequence(ex.gates), S), ex.o, `${name} o`);
      expectClose(S, ex.S, `${name} S`);
    });
    for (const C of [1, 2, 3, 4])
      it(`${name}: chunked, C = ${C}`, () => {
        const S = new Float64Array(4);
        expectClose(rule.chunked(sequence(ex.gates), S, C), ex.o, `${name} o (C = ${C})`);
        expectClose(S, ex.S, `${name} S (C = ${C})`);
      });
  }

  it('gated-delta from a non-zero initial state, chunked over a chunk boundary', () => {
    // h = [[1, 0], [0, 1]], one token k = [0.6, 0.8], v = [1, 1], g = ln 0.5, β = 0.5, q = [1, 0]:
    // S̄ = 0.5 I, S̄ᵀk = [0.3, 0.4], u = 0.5 [0.7, 0.6] = [0.35, 0.3]
    // S' = [[0.5 + 0.21, 0.18], [0.28, 0.5 + 0.24]], o = row0 = [0.71, 0.18]
    const seq: HeadSequence = {
      n: 1, dk: 2, dv: 2, q: Float64Array.from([1, 0]),
      inputs: { k: Float64Array.from([0.6, 0.8]), v: Float64Array.from([1, 1]), g: Float64Array.from([Math.log(0.5)]), beta: Float64Array.from([0.5]) },
    };
    for (const run of [(S: Float64Array) => BUILTIN_RULES['gated-delta'].recurrent(seq, S), (S: Float64Array) => BUILTIN_RULES['gated-delta'].chunked(seq, S, 4)]) {
      const S = Float64Array.from([1, 0, 0, 1]);
      expectClose(run(S), [0.71, 0.18], 'o');
      expectClose(S, [0.71, 0.18, 0.28, 0.74], 'S');
    }
  });
});

describe('routing examples (docs/spec.md §2)', () => {
  it('a tie at the top goes to the lower index, weights split evenly', () => {
    // z = [1, 2, 2, 0]: p1 = p2 are the largest; k = 2 takes both, in index order, w = p/(p1+p2) = 1/2 each.
    const r = routeToken([1, 2, 2, 0], 2);
    expect(r.indices).toEqual([1, 2]);
    expectClose(r.weights, [0.5, 0.5], 'weights');
    const Z = Math.E + 2 * Math.E ** 2 + 1; // Σ e^{z}
    expectClose(r.probs, [Math.E / Z, Math.E ** 2 / Z, Math.E ** 2 / Z, 1 / Z], 'probs');
  });

  it('a tie for the last slot goes to the lowest of the tied indices', () => {
    // z = [0, 1, 0, 0], k = 2: memory 1 first; memories 0, 2, 3 tie, memory 0 wins.
    // p1 = e/(e+3), p0 = 1/(e+3), renormalised: w = [e/(e+1), 1/(e+1)].
    const r = routeToken([0, 1, 0, 0], 2);
    expect(r.indices).toEqual([1, 0]);
    expectClose(r.weights, [Math.E / (Math.E + 1), 1 / (Math.E + 1)], 'weights');
  });

  it('all equal with k = E keeps index order and uniform weights', () => {
    const r = route(Float64Array.from([3, 3, 3, -1, -1, -1]), 1, 2, 3, 3);
    expect(Array.from(r.indices)).toEqual([0, 1, 2, 0, 1, 2]);
    expectClose(r.weights, [1 / 3, 1 / 3, 1 / 3, 1 / 3, 1 / 3, 1 / 3], 'weights');
  });

  it('a large logit does not overflow (the max is subtracted first)', () => {
    const r = routeToken([1000, 999], 1);
    expect(r.indices).toEqual([0]);
    expectClose(r.probs, [1 / (1 + Math.exp(-1)), Math.exp(-1) / (1 + Math.exp(-1))], 'probs');
    expectClose(r.weights, [1], 'weights');
  });
});

describe('a worked MoM example (docs/spec.md §4): E = 2, k = 1, shared memory, linear rule, s = 1', () => {
  // t0 routes to memory 0 (z = [1, 0]), t1 to memory 1 (z = [0, 3]); k = 1 so each weight is 1.
  //   memory 0: t0 k = [1, 0], v = [1, 2]   (t1's inputs are ignored: memory 0 is inactive then)
  //   memory 1: t1 k = [1, 0], v = [−1, 1]  (t0's inputs are ignored)
  //   shared:   t0 k = [0, 1], v = [1, 1];  t1 k = [0, 1], v = [2, 0]
  //   q: t0 [1, 1], t1 [1, 0]
  // t0: S⁰ = [[1, 2], [0, 0]], Sˢ = [[0, 0], [1, 1]]; o0 = S⁰ᵀq + Sˢᵀq = [1, 2] + [1, 1] = [2, 3]
  // t1: S¹ = [[−1, 1], [0, 0]], S⁰ unchanged, Sˢ = [[0, 0], [3, 1]]; o1 = [−1, 1] + [0, 0]
  const cfg: CoreConfig = { B: 1, T: 2, H: 1, E: 2, topk: 1, dk: 2, dv: 2, shared: true, scale: 1 };
  const f = (a: number[]) => Float64Array.from(a);
  const x: CoreInputs = {
    q: f([1, 1, 1, 0]),
    logits: f([1, 0, 0, 3]),
    memories: [
      { k: f([1, 0, 0, 1]), v: f([1, 2, 5, 5]) },
      { k: f([0, 1, 1, 0]), v: f([3, 3, -1, 1]) },
    ],
    shared: { k: f([0, 1, 0, 1]), v: f([1, 1, 2, 0]) },
  };
  const wantO = [2, 3, -1, 1];
  const wantRouted = [1, 2, 0, 0, -1, 1, 0, 0];
  const wantShared = [0, 0, 3, 1];
  const rule = BUILTIN_RULES.linear;

  it('direct form, both read-outs', () => {
    for (const mix of ['after', 'before'] as const) {
      const out = momForward(rule, cfg, x, { mix });
      expectClose(out.o, wantO, `o (mix ${mix})`);
      expectClose(out.final.routed, wantRouted, 'routed state');
      expectClose(out.final.shared as Float64Array, wantShared, 'shared state');
    }
  });

  it('gathered form, recurrent and chunked', () => {
    for (const chunk of [undefined, 1, 16]) {
      const out = momGathered(rule, cfg, x, { chunk });
      expectClose(out.o, wantO, `o (chunk ${chunk})`);
      expectClose(out.final.routed, wantRouted, 'routed state');
      expectClose(out.final.shared as Float64Array, wantShared, 'shared state');
    }
  });

  it('inference state: step, step', () => {
    const st = new MomState(rule, cfg);
    expect(st.byteSize).toBe(8 * 3 * 4); // (E + shared) · dk · dv float64s
    const token = (t: number): CoreInputs => ({
      q: x.q.slice(2 * t, 2 * t + 2),
      logits: x.logits.slice(2 * t, 2 * t + 2),
      memories: x.memories.map((m) => ({ k: m.k.slice(2 * t, 2 * t + 2), v: m.v.slice(2 * t, 2 * t + 2) })),
      shared: { k: x.shared!.k.slice(2 * t, 2 * t + 2), v: x.shared!.v.slice(2 * t, 2 * t + 2) },
    });
    expectClose(st.step(token(0)), [2, 3], 'o0');
    const snap = st.snapshot();
    expectClose(st.step(token(1)), [-1, 1], 'o1');
    expect(st.tokensSeen).toBe(2);
    expectClose(st.snapshot().routed, wantRouted, 'routed state');
    st.restore(snap); // back to after t0: replaying t1 gives the same answer
    expectClose(st.step(token(1)), [-1, 1], 'o1 after restore');
    expectClose(snap.routed, [1, 2, 0, 0, 0, 0, 0, 0], 'the snapshot is a copy, not a view');
  });

  it('the trace tells the same story', () => {
    const events = [...traceSteps(rule, cfg, x)];
    expect(events.map((e) => e.selected)).toEqual([[0], [1]]);
    expectClose(events[0].outputMixAfter, [2, 3], 'trace o0');
    expectClose(events[1].outputMixBefore, [-1, 1], 'trace o1');
    expect(events[1].memories[0].stateBefore).toEqual([[0, 0], [0, 0]]);
    expect(events[1].shared!.stateBefore).toEqual([[0, 0], [1, 1]]);
    expect(events[0].memories[0].g).toBeNull(); // linear has no gates
  });
});

describe('trace agrees with the direct form on sampled inputs', () => {
  // Same operations in the same order as momForward: equal to the last bit (measured: 0 difference).
  for (const name of ['gla', 'gated-delta'] as const)
    it(name, () => {
      const rule = BUILTIN_RULES[name];
      const cfg: CoreConfig = { B: 1, T: 5, H: 1, E: 3, topk: 2, dk: 3, dv: 2, shared: true };
      const x = sampleCoreInputs(rule, cfg, 7);
      const o = momForward(rule, cfg, x).o;
      const traced = [...traceSteps(rule, cfg, x)].flatMap((e) => e.outputMixAfter);
      expect(traced).toEqual(Array.from(o));
    });
});
