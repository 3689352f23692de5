/**
 * SPEC 4: an inactive memory neither decays nor moves. Fed token by token (MomState.step) from
 * a random state, every memory that token t of sequence b does not select keeps its state for
 * (b, every head) bit for bit; over the whole sequence (momForward), a memory that gets no
 * token of b ends exactly where it started. Exact comparison: no arithmetic may touch it.
 */
import { momForward } from '../reference/mom.js';
import { route } from '../reference/router.js';
import { MomState } from '../reference/state.js';
import { coreCaseArb, coreStateArb, type CoreCase } from './arbitraries.js';
import { sliceInputs } from './slice.js';
import { exact, type Property } from './types.js';

/** First index where two arrays differ bit for bit (NaN-safe through Object.is), or -1. */
function firstDifference(a: Float64Array, b: Float64Array): number {
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

export const inactiveMemoryUnchanged: Property<Required<CoreCase>> = {
  id: 'inactive-memory-unchanged',
  title: 'reference: a memory a token does not select keeps its state bit for bit',
  needsGpu: false,
  perRule: true,
  applies: () => true,
  // Always a random initial state: on zeros "unchanged" would be too easy (a decay of 0 is 0).
  arbitrary: (t, sizes) =>
    coreCaseArb(t.ref.inputs, sizes, { initial: false }).chain((c) => coreStateArb(c.cfg).map((initial) => ({ ...c, initial }))),
  check(_env, t, c) {
    const { cfg, x, initial } = c;
    const { B, T, H, E, topk, dk, dv } = cfg;
    const block = H * dk * dv; // one (e, b) pair, all heads
    const routing = route(x.logits, B, T, E, topk);
    const state = new MomState(t.ref, cfg, initial);
    for (let tt = 0; tt < T; tt++) {
      const before = state.snapshot();
      state.step(sliceInputs(x, B, T, tt, tt + 1));
      const after = state.snapshot();
      for (let b = 0; b < B; b++) {
        const chosen = Array.from(routing.indices.subarray((b * T + tt) * topk, (b * T + tt + 1) * topk));
        for (let e = 0; e < E; e++) {
          if (chosen.includes(e)) continue;
          const at = (e * B + b) * block;
          const d = firstDifference(before.routed.subarray(at, at + block), after.routed.subarray(at, at + block));
          if (d >= 0) return exact(false, `step t = ${tt}, b = ${b}: memory ${e} was not selected (chose ${chosen}) but its state moved at element ${d} (head ${Math.floor(d / (dk * dv))})`);
        }
      }
    }
    // The whole sequence at once: memories with no token of b end at their initial state.
    const whole = momForward(t.ref, cfg, x, { initial });
    for (let b = 0; b < B; b++)
      for (let e = 0; e < E; e++) {
        let used = false;
        for (let tt = 0; tt < T && !used; tt++) used = routing.indices.subarray((b * T + tt) * topk, (b * T + tt + 1) * topk).includes(e);
        if (used) continue;
        const at = (e * B + b) * block;
        const d = firstDifference(initial.routed.subarray(at, at + block), whole.final.routed.subarray(at, at + block));
        if (d >= 0) return exact(false, `momForward: memory ${e} got no token of sequence ${b} but its final state differs from the initial one at element ${d}`);
      }
    return exact(true);
  },
  describe: (c) => c,
};
