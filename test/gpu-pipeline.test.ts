/**
 * The GPU MoM pipeline (gpu/mom.ts): router, stable gather, the whole forward against the
 * float64 reference (reference/mom.ts), and refusals. Shapes stay small (lavapipe is slow);
 * the broad randomised suite lives in properties/.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { getGpu, type GpuContext } from '../gpu/device.js';
import { gpuGather, gpuRoute } from '../gpu/mom.js';
import { ConfigError, ShapeError } from '../reference/errors.js';
import { gatherTokens } from '../reference/mom.js';
import { route } from '../reference/router.js';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await getGpu();
});

/** Grid values i/16 in [-4, 4]: exact in float32, and coarse enough to produce many ties. */
const coarseLogit = fc.integer({ min: -64, max: 64 }).map((i) => i / 16);

/** Independent integers for the shape, so that counterexamples shrink dimension by dimension. */
const routeCase = fc
  .record({ B: fc.integer({ min: 1, max: 3 }), T: fc.integer({ min: 1, max: 40 }), E: fc.integer({ min: 1, max: 7 }), kRaw: fc.integer({ min: 1, max: 7 }), seed: fc.integer() })
  .chain(({ B, T, E, kRaw }) =>
    fc.record({ B: fc.constant(B), T: fc.constant(T), E: fc.constant(E), topk: fc.constant(Math.min(kRaw, E)), logits: fc.array(coarseLogit, { minLength: B * T * E, maxLength: B * T * E }) }),
  );

const runs = { numRuns: 12, interruptAfterTimeLimit: 20_000, markInterruptAsFailure: false } as const;

/**
 * Routed weights: float32 exp and division against float64. Measured over these cases: the
 * largest |w_gpu - w_ref| was 1.2e-7 (about one float32 ulp of a weight <= 1, from exp's
 * rounding); held to 4e-7, a few ulps.
 */
const WEIGHT_TOL = 4e-7;

async function checkRouting(B: number, T: number, E: number, topk: number, logits: Float64Array): Promise<number> {
  const ref = route(logits, B, T, E, topk);
  const got = await gpuRoute(ctx, logits, B, T, E, topk);
  expect(Array.from(got.indices)).toEqual(Array.from(ref.indices));
  let worst = 0;
  for (let i = 0; i < ref.weights.length; i++) worst = Math.max(worst, Math.abs(got.weights[i] - ref.weights[i]));
  expect(worst).toBeLessThanOrEqual(WEIGHT_TOL);
  return worst;
}

describe('gpu router', () => {
  it('matches reference routing (indices exactly, weights to float32 rounding), incl. ties and k = E', async () => {
    let worst = 0;
    await fc.assert(
      fc.asyncProperty(routeCase, async ({ B, T, E, topk, logits }) => {
        worst = Math.max(worst, await checkRouting(B, T, E, topk, Float64Array.from(logits)));
      }),
      runs,
    );
    console.log(`router: worst |w_gpu - w_ref| = ${worst.toExponential(2)}`);
  });

  it('sends equal logits to the lower indices with equal weights', async () => {
    const B = 2, T = 3, E = 5;
    for (const topk of [1, 3, 5]) {
      const logits = new Float64Array(B * T * E).fill(0.75);
      const got = await gpuRoute(ctx, logits, B, T, E, topk);
      for (let tok = 0; tok < B * T; tok++) {
        expect(Array.from(got.indices.subarray(tok * topk, (tok + 1) * topk))).toEqual(Array.from({ length: topk }, (_, j) => j));
        for (let j = 0; j < topk; j++) expect(Math.abs(got.weights[tok * topk + j] - 1 / topk)).toBeLessThanOrEqual(WEIGHT_TOL);
      }
    }
    // partial ties: [1, 3, 3, 0, 3] with k = 2 -> memories 1 and 2 (the lower of the tied 3s)
    const logits = Float64Array.from([1, 3, 3, 0, 3]);
    expect(Array.from((await gpuRoute(ctx, logits, 1, 1, 5, 2)).indices)).toEqual([1, 2]);
    await checkRouting(1, 1, 5, 4, logits);
  });

  it('refuses k outside 1..E and logits of the wrong length', async () => {
    await expect(gpuRoute(ctx, new Float64Array(6), 1, 2, 3, 4)).rejects.toThrow(ConfigError);
    await expect(gpuRoute(ctx, new Float64Array(6), 1, 2, 3, 0)).rejects.toThrow(/1 <= k <= E/);
    await expect(gpuRoute(ctx, new Float64Array(5), 1, 2, 3, 1)).rejects.toThrow(ShapeError);
  });
});

/** Check the GPU gather against reference/mom.ts gatherTokens: offsets, completeness, time order. */
async function checkGather(B: number, T: number, E: number, topk: number, indices: Int32Array, shared: boolean): Promise<void> {
  const lists = gatherTokens({ probs: new Float64Array(0), indices, weights: new Float64Array(0) }, B, T, E);
  const { cu, tokens } = await gpuGather(ctx, indices, B, T, E, topk, shared);
  const S = (E + (shared ? 1 : 0)) * B;
  expect(cu.length).toBe(S + 1);
  expect(cu[0]).toBe(0);
  expect(cu[S]).toBe(B * T * (topk + (shared ? 1 : 0)));
  expect(tokens.length).toBe(cu[S]);
  for (let e = 0; e < E + (shared ? 1 : 0); e++) {
    for (let b = 0; b < B; b++) {
      const s = e * B + b;
      const want = e < E ? Array.from(lists[b][e]) : Array.from({ length: T }, (_, t) => t);
      expect(Array.from(tokens.subarray(cu[s], cu[s + 1])), `segment e=${e} b=${b}`).toEqual(want);
    }
  }
}

describe('gpu gather', () => {
  it('is stable and complete for random routings (memories without tokens, k = E, T = 1)', async () => {
    await fc.assert(
      fc.asyncProperty(routeCase, fc.boolean(), async ({ B, T, E, topk, logits }, shared) => {
        // Memory E-1 is starved whenever k < E: every token ranks it last.
        const z = Float64Array.from(logits, (v, i) => (E > 1 && i % E === E - 1 ? -10 : v));
        const { indices } = route(z, B, T, E, topk);
        await checkGather(B, T, E, topk, indices, shared);
      }),
      runs,
    );
  });

  it('keeps time order across scan tiles (T = 300 > 256 threads) and for a single token', async () => {
    const B = 2, T = 300, E = 3, topk = 2;
    const logits = Float64Array.from({ length: B * T * E }, (_, i) => Math.sin(i * 12.9898) * 3);
    await checkGather(B, T, E, topk, route(logits, B, T, E, topk).indices, true);
    await checkGather(1, 1, 4, 1, Int32Array.from([2]), true);
    await checkGather(1, 1, 4, 4, Int32Array.from([3, 1, 0, 2]), false);
  });

  it('refuses indices that are out of range or repeated', async () => {
    await expect(gpuGather(ctx, Int32Array.from([0, 3]), 1, 1, 3, 2, false)).rejects.toThrow(/not a memory index/);
    await expect(gpuGather(ctx, Int32Array.from([1, 1]), 1, 1, 3, 2, false)).rejects.toThrow(/routes twice/);
  });
});
