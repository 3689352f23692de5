/**
 * `state-bounded`: with inputs in their declared ranges, a memory's state must not grow
 * exponentially. Finiteness in float64 is not enough: a state that doubles every few hundred tokens
 * stays finite for thousands of tokens and still overflows any float32 kernel.
 *
 * The measurement runs one memory of the float64 reference token by token (every token routed to it,
 * the worst case for growth), records ℓ_t = ln ‖S_t‖_F and fits a line to ℓ over the second half of
 * the sequence. A polynomial growth t^p fits there with slope close to p / (0.75 T) (p / t at the
 * window's middle), so the slope times 0.75 T reads as an effective degree; exponential growth e^{r t}
 * has slope r, and its effective degree grows with T. The verdict: effective degree above MAX_DEGREE fails, with the
 * growth rate per token and the token where float32 would overflow; a smaller positive degree passes
 * with a note (the plain `linear` rule's state is a sum of T outer products).
 */
import fc from 'fast-check';
import { tokenInputs } from '../reference/mom.js';
import { sampleCoreInputs } from '../reference/sample.js';
import type { CoreConfig, Rule } from '../reference/types.js';
import type { Property } from './types.js';

/** Effective polynomial degree over the second half of the run above which growth counts as exponential. */
export const MAX_DEGREE = 6;
/** ln of float32's largest finite value (3.40e38). */
export const LN_F32_MAX = Math.log(3.4028234663852886e38);

export interface Growth {
  /** fitted slope of ln ‖S_t‖ over the second half, per token */
  ratePerToken: number;
  /** ratePerToken · 0.75 T: the degree p a polynomial t^p would need to grow this fast */
  degree: number;
  /** ln ‖S‖ at the last token */
  lastLogNorm: number;
  /** first token whose state norm passed float32's range, if any */
  overflowAt?: number;
  /** the token where float32 would overflow at this rate (extrapolated; undefined when not growing) */
  predictedOverflowAt?: number;
  /** first token whose state was not finite in float64, if any */
  nonFiniteAt?: number;
}

/** ln ‖A‖_F, through the largest entry when ‖A‖² overflows while every entry is finite. */
export function logFrobenius(A: Float64Array): number {
  let ss = 0;
  for (let i = 0; i < A.length; i++) ss += A[i] * A[i];
  if (Number.isFinite(ss)) return 0.5 * Math.log(ss);
  let m = 0;
  for (let i = 0; i < A.length; i++) m = Math.max(m, Math.abs(A[i]));
  let sc = 0;
  for (let i = 0; i < A.length; i++) sc += (A[i] / m) ** 2;
  return Math.log(m) + 0.5 * Math.log(sc);
}

/** Runs `rule` on one memory over `T` tokens of seeded inputs and measures how its state grows. */
export function measureGrowth(rule: Rule, dims: { dk: number; dv: number }, T: number, seed: number): Growth {
  const cfg: CoreConfig = { B: 1, T, H: 1, E: 1, topk: 1, dk: dims.dk, dv: dims.dv, shared: false };
  const mem = sampleCoreInputs(rule, cfg, seed).memories[0];
  const S = new Float64Array(dims.dk * dims.dv);
  const logNorm = new Float64Array(T);
  let overflowAt: number | undefined;
  for (let t = 0; t < T; t++) {
    rule.step(S, tokenInputs(rule, mem, cfg, 0, t, 0), dims);
    const ln = logFrobenius(S);
    if (Number.isNaN(ln) || ln === Infinity) {
      return { ratePerToken: Infinity, degree: Infinity, lastLogNorm: ln, overflowAt: overflowAt ?? t, nonFiniteAt: t };
    }
    if (overflowAt === undefined && ln > LN_F32_MAX) overflowAt = t;
    // A state at exactly zero has no growth to measure: floor it far below any float32 value.
    logNorm[t] = Math.max(ln, -1000);
  }
  return fitGrowth(logNorm, overflowAt);
}

/** The growth of a sequence of log norms ℓ_0 … ℓ_{T−1}: a line fitted over its second half (see the file comment). */
export function fitGrowth(logNorm: Float64Array, overflowAt?: number): Growth {
  const T = logNorm.length;
  const t0 = Math.floor(T / 2);
  const n = T - t0;
  let st = 0;
  let sl = 0;
  for (let t = t0; t < T; t++) {
    st += t;
    sl += logNorm[t];
  }
  const mt = st / n;
  const ml = sl / n;
  let cov = 0;
  let vt = 0;
  for (let t = t0; t < T; t++) {
    cov += (t - mt) * (logNorm[t] - ml);
    vt += (t - mt) ** 2;
  }
  const rate = vt > 0 ? cov / vt : 0;
  const last = logNorm[T - 1];
  const growth: Growth = { ratePerToken: rate, degree: rate * 0.75 * T, lastLogNorm: last, overflowAt };
  if (rate > 0 && last < LN_F32_MAX) growth.predictedOverflowAt = T - 1 + Math.ceil((LN_F32_MAX - last) / rate);
  return growth;
}

/** One line about a growth measurement, for reports. */
export function describeGrowth(g: Growth, T: number, what = { name: 'the state', norm: '‖S‖' }): string {
  if (g.nonFiniteAt !== undefined) return `${what.name} is not finite in float64 at token ${g.nonFiniteAt}`;
  const rate = `ln ${what.norm} grows ${g.ratePerToken.toExponential(2)} per token (×${Math.exp(g.ratePerToken * 100).toPrecision(3)} per 100 tokens)`;
  const overflow =
    g.overflowAt !== undefined
      ? `; past float32's range at token ${g.overflowAt}`
      : g.predictedOverflowAt !== undefined && g.degree > MAX_DEGREE
        ? `; float32 would overflow near token ${g.predictedOverflowAt}`
        : '';
  return `${rate} over tokens ${Math.floor(T / 2)}-${T - 1}, like a polynomial of degree ${g.degree.toFixed(1)}${overflow}`;
}

export interface GrowthCase {
  T: number;
  dk: number;
  dv: number;
  seed: number;
}

export const growthCaseArb = (): fc.Arbitrary<GrowthCase> =>
  fc.record({
    T: fc.integer({ min: 2000, max: 4000 }),
    dk: fc.integer({ min: 2, max: 8 }),
    dv: fc.integer({ min: 2, max: 8 }),
    // sampleCoreInputs respects each input's declared range (reference/sample.ts); the seed shrinks too.
    seed: fc.integer({ min: 0, max: 0xffff }),
  });

/** docs/spec.md §3: inputs in their declared ranges keep the state bounded, or at most polynomial. */
export const stateBounded: Property<GrowthCase> = {
  id: 'state-bounded',
  title: 'reference: the state does not grow exponentially over long sequences (inputs in their declared ranges)',
  needsGpu: false,
  perRule: true,
  applies: () => true,
  arbitrary: () => growthCaseArb(),
  check(_env, t, c) {
    const g = measureGrowth(t.ref, c, c.T, c.seed);
    const ok = g.nonFiniteAt === undefined && g.overflowAt === undefined && g.degree <= MAX_DEGREE;
    const note = ok && g.degree > 0.5 ? `grows polynomially: ${describeGrowth(g, c.T)}` : undefined;
    return {
      ok,
      errRatio: 0,
      maxAbs: 0,
      tolerance: 0,
      message: ok ? note : `the state grows exponentially: ${describeGrowth(g, c.T)}`,
    };
  },
  describe: (c) => c,
};
