/**
 * docs/spec.md §5: the chunkwise-parallel form equals the token-by-token recurrence, for any chunk size
 * and any length (not only multiples of the chunk), outputs and final state.
 *
 * - `refChunkedEqualsRecurrent`: the reference rules (float64), chunk sizes 1, 3, 16, 64 and any
 *   size up to 70, from a random initial state.
 */
import fc from 'fast-check';
import { checkedForward } from './canary.js';
import { coreCaseArb, gpuChunkArb, headCaseArb, refChunkArb, type CoreCase, type HeadCase } from './arbitraries.js';
import { compareOutcome, forwardPairs } from './compare.js';
import { gpuChunkTolerance } from './tolerances.js';
import type { Property } from './types.js';

// Float64 against float64, two orders of summation: measured worst error ratio 3.5e-14 over
// 2000 cases per rule (gated-delta; the others ≤ 4e-15; n up to 80, dk, dv up to 8, chunk
// 1..70), max abs 7e-15. 1e-10 (the bound) is ~3000x above that, and still far below
// any real mistake (a wrong decay or a dropped token moves the ratio to 1e-3 or more).
const REF_CHUNK_TOL = 1e-10;

export type RefChunkCase = HeadCase & { C: number };

export const refChunkedEqualsRecurrent: Property<RefChunkCase> = {
  id: 'chunked-equals-recurrent',
  title: 'reference: chunked form (any chunk size) equals the token-by-token recurrence',
  needsGpu: false,
  perRule: true,
  applies: (t) => t.chunked !== undefined,
  arbitrary: (t, sizes) =>
    fc.record({ h: headCaseArb(t.ref.inputs, sizes.seqLen), C: refChunkArb }).map(({ h, C }) => ({ ...h, C })),
  check(_env, t, c) {
    const rule = t.chunked!;
    const seq = { n: c.n, dk: c.dk, dv: c.dv, q: c.q, inputs: c.inputs };
    const S1 = c.S0.slice();
    const o1 = rule.recurrent(seq, S1);
    const S2 = c.S0.slice();
    const o2 = rule.chunked(seq, S2, c.C);
    // atol 0: in float64 only the ratio decides (docs/spec.md §9's 1e-6 outright pass is for float32).
    return compareOutcome(
      [
        { what: 'o', ref: o1, got: o2 },
        { what: 'final state', ref: S1, got: S2 },
      ],
      REF_CHUNK_TOL,
      { atol: 0 },
    );
  },
  describe: (c) => ({ n: c.n, dk: c.dk, dv: c.dv, C: c.C, q: c.q, inputs: c.inputs, S0: c.S0 }),
};

/**
 * - `gpuChunkedEqualsRecurrent`: on the GPU, the chunked kernels (16, 32, 64) equal the
 *   token-by-token kernel, both float32, outputs and final states.
 */
export type GpuChunkCase = CoreCase & { chunk: 16 | 32 | 64 };

export const gpuChunkedEqualsRecurrent: Property<GpuChunkCase> = {
  id: 'gpu-chunked-equals-recurrent',
  title: 'GPU: chunked kernels (16/32/64) equal the token-by-token kernel, outputs and final states',
  needsGpu: true,
  perRule: true,
  applies: (t) => t.gpu !== undefined && t.gpu.modes.includes('chunk') && t.gpu.modes.includes('recurrent'),
  arbitrary: (t, sizes) => fc.record({ c: coreCaseArb(t.ref.inputs, sizes), chunk: gpuChunkArb }).map(({ c, chunk }) => ({ ...c, chunk })),
  async check(env, t, c) {
    const rec = await checkedForward(env.ctx!, t.gpu!, c.cfg, c.x, { mode: 'recurrent', initial: c.initial });
    const chk = await checkedForward(env.ctx!, t.gpu!, c.cfg, c.x, { mode: 'chunk', chunk: c.chunk, initial: c.initial });
    const tol = gpuChunkTolerance(t.name);
    return compareOutcome(forwardPairs(rec, chk), tol, { context: `chunk ${c.chunk}` });
  },
  describe: (c) => c,
};
