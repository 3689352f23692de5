/**
 * SPEC 7: decoding equals one pass. Feeding a sequence to a decode state — a prefill then one
 * step per token, or a prefill in several pieces — gives the same outputs and the same final
 * state as one forward pass over the whole sequence, from the same (random) initial state.
 *
 * - `refDecodeEqualsForward`: reference MomState against momForward (float64).
 */
import fc from 'fast-check';
import { momForward } from '../reference/mom.js';
import { MomState } from '../reference/state.js';
import { coreCaseArb, type CoreCase } from './arbitraries.js';
import { compareAll, describeFailures } from './compare.js';
import { feedingArb, joinTime, pieces, sliceInputs, type Feeding } from './slice.js';
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
    const cmp = compareAll([
      { what: 'o', ref: one.o, got: joinTime(outs, B, T, H * dv) },
      { what: 'final.routed', ref: one.final.routed, got: fin.routed },
      { what: 'final.shared', ref: one.final.shared ?? [], got: fin.shared ?? [] },
    ]);
    const ok = cmp.items.every((i) => i.pass(REF_DECODE_TOL, 0));
    return { ok, errRatio: cmp.errRatio, maxAbs: cmp.maxAbs, tolerance: REF_DECODE_TOL, message: ok ? undefined : describeFailures(cmp.items, REF_DECODE_TOL, 0) };
  },
  describe: (c) => c,
};
