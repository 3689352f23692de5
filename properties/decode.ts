/**
 * docs/spec.md §7: decoding equals one pass. Feeding a sequence to a decode state — a prefill then one
 * step per token, or a prefill in several pieces — gives the same outputs and the same final
 * state as one forward pass over the whole sequence, from the same (random) initial state.
 *
 * - `refDecodeEqualsForward`: reference MomState against momForward (float64).
 */
import fc from 'fast-check';
import { GpuMomState } from '../gpu/decode.js';
import { checkedForward, probeCanaries } from './canary.js';
import { momForward } from '../reference/mom.js';
import { MomState } from '../reference/state.js';
import { coreCaseArb, type CoreCase } from './arbitraries.js';
import { compareOutcome, forwardPairs } from './compare.js';
import { feedingArb, joinTime, pieces, sliceInputs, type Feeding } from './slice.js';
import { forwardMode, gpuModeArb, type GpuMode } from './gpu-mode.js';
import { gpuDecodeTolerance } from './tolerances.js';
import type { Property } from './types.js';

export type DecodeCase = CoreCase & { feeding: Feeding };

export function decodeCaseArb(inputs: Parameters<typeof coreCaseArb>[0], sizes: Parameters<typeof coreCaseArb>[1], maxSteps = Infinity): fc.Arbitrary<DecodeCase> {
  return coreCaseArb(inputs, sizes).chain((c) => feedingArb(c.cfg.T, maxSteps).map((feeding) => ({ ...c, feeding })));
}

// Float64; the reference decode runs the same direct recurrence piece by piece, so the result
// is bit-identical (measured worst error ratio 0 over 1000 cases per rule). 1e-10 keeps the
// property true for an implementation that reassociates, as every float64 identity here.
const REF_DECODE_TOL = 1e-10;

export const refDecodeEqualsForward: Property<DecodeCase> = {
  id: 'decode-equals-forward',
  title: 'reference: prefill + steps, or prefill in pieces, equals one pass (outputs and final state)',
  needsGpu: false,
  perRule: true,
  applies: () => true,
  arbitrary: (t, sizes) => decodeCaseArb(t.ref.inputs, sizes),
  check(_env, t, c) {
    const { cfg, x, initial } = c;
    const { B, T, H, dv } = cfg;
    const one = momForward(t.ref, cfg, x, { initial });
    const st = new MomState(t.ref, cfg, initial);
    const outs = pieces(c.feeding, T).map(([t0, t1]) => {
      const xs = sliceInputs(x, B, T, t0, t1);
      return { t0, o: t1 - t0 === 1 && t0 > 0 ? st.step(xs) : st.prefill(xs, t1 - t0) };
    });
    const fin = st.snapshot();
    return compareOutcome(forwardPairs(one, { o: joinTime(outs, B, T, H * dv), final: fin }), REF_DECODE_TOL, { atol: 0 });
  },
  describe: (c) => c,
};

/**
 * - `gpuDecodeEqualsForward`: on the GPU, GpuMomState (prefill in the drawn kernel mode, steps
 *   token by token) against one gpuMomForward over the whole sequence, outputs and final state;
 *   and the state's byteSize is 4·(E + shared)·B·H·dk·dv before and after, whatever T.
 *   Steps are capped (8 per case) to keep the software driver's time in bounds.
 */
export type GpuDecodeCase = DecodeCase & { mode: GpuMode };

const MAX_GPU_STEPS = 8;

export const gpuDecodeEqualsForward: Property<GpuDecodeCase> = {
  id: 'gpu-decode-equals-forward',
  title: 'GPU: prefill + steps, or prefill in pieces, equals one pass; state byte size independent of T',
  needsGpu: true,
  perRule: true,
  applies: (t) => t.gpu !== undefined,
  arbitrary: (t, sizes) =>
    fc.record({ c: decodeCaseArb(t.ref.inputs, sizes, MAX_GPU_STEPS), mode: gpuModeArb(t.gpu!) }).map(({ c, mode }) => ({ ...c, mode })),
  async check(env, t, c) {
    const ctx = env.ctx!;
    const { cfg, x, initial } = c;
    const { B, T, H, E, dk, dv, shared } = cfg;
    const fm = forwardMode(c.mode);
    const one = await checkedForward(ctx, t.gpu!, cfg, x, { ...fm, initial });
    const probed = probeCanaries(ctx, t.gpu!);
    const st = await GpuMomState.create(ctx, probed.rule, cfg, { initial, maxPrefill: T, ...fm });
    try {
      const bytes = 4 * (E + (shared ? 1 : 0)) * B * H * dk * dv;
      const size0 = st.byteSize;
      const outs: { t0: number; o: Float32Array }[] = [];
      for (const [t0, t1] of pieces(c.feeding, T)) {
        const xs = sliceInputs(x, B, T, t0, t1);
        outs.push({ t0, o: t1 - t0 === 1 && t0 > 0 ? await st.step(xs) : await st.prefill(xs, t1 - t0) });
      }
      const fin = await st.snapshot();
      await probed.verify();
      const words = 4 * (fin.routed.length + (fin.shared?.length ?? 0));
      const sizeProblem =
        size0 !== bytes ? `byteSize ${size0}, expected 4·(E+shared)·B·H·dk·dv = ${bytes}`
        : st.byteSize !== size0 ? `byteSize changed from ${size0} to ${st.byteSize} after ${T} tokens`
        : words !== bytes ? `the snapshot after ${T} tokens holds ${words} bytes, expected ${bytes}`
        : null;
      const tol = gpuDecodeTolerance(t.name);
      return compareOutcome(forwardPairs(one, { o: joinTime(outs, B, T, H * dv), final: fin }), tol, { context: `${c.mode}, ${c.feeding.kind}`, problem: sizeProblem });
    } finally {
      await st.destroy();
    }
  },
  describe: (c) => c,
};
