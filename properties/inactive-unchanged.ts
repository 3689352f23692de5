/**
 * docs/spec.md §4: an inactive memory neither decays nor moves. Fed token by token (MomState.step) from
 * a random state, every memory that token t of sequence b does not select keeps its state for
 * (b, every head) bit for bit; over the whole sequence (momForward), a memory that gets no
 * token of b ends exactly where it started. Exact comparison: no arithmetic may touch it.
 */
import fc from 'fast-check';
import { GpuMomState } from '../gpu/decode.js';
import { momForward } from '../reference/mom.js';
import { route } from '../reference/router.js';
import type { Routing } from '../reference/types.js';
import { MomState } from '../reference/state.js';
import { coreCaseArb, coreStateArb, type CoreCase } from './arbitraries.js';
import { checkedForward, probeCanaries } from './canary.js';
import { forwardMode, gpuModeArb, type GpuMode } from './gpu-mode.js';
import { sliceInputs } from './slice.js';
import { exact, type Property } from './types.js';

/** First index where two arrays differ bit for bit (NaN-safe through Object.is), or -1. */
function firstDifference(a: Float64Array | Float32Array, b: Float64Array | Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

type Routed = { routed: Float64Array | Float32Array };
type Dims = { B: number; T: number; E: number; topk: number; block: number };

/** After token tt: the first memory of some b that tt does not select but whose state moved, as a message; else null. */
function movedUnselected(routing: Routing, d: Dims, tt: number, before: Routed, after: Routed, label: string): string | null {
  const { B, T, E, topk, block } = d;
  for (let b = 0; b < B; b++) {
    const chosen = Array.from(routing.indices.subarray((b * T + tt) * topk, (b * T + tt + 1) * topk));
    for (let e = 0; e < E; e++) {
      if (chosen.includes(e)) continue;
      const at = (e * B + b) * block;
      const i = firstDifference(before.routed.subarray(at, at + block), after.routed.subarray(at, at + block));
      if (i >= 0) return `${label} t = ${tt}, b = ${b}: memory ${e} was not selected (chose ${chosen}) but its state moved at element ${i}`;
    }
  }
  return null;
}

/** Over a whole sequence: the first memory that gets no token of some b but does not end at its initial state; else null. */
function movedWithoutTokens(routing: Routing, d: Dims, initial: Float64Array | Float32Array, final: Float64Array | Float32Array, label: string): string | null {
  const { B, T, E, topk, block } = d;
  for (let b = 0; b < B; b++)
    for (let e = 0; e < E; e++) {
      let used = false;
      for (let tt = 0; tt < T && !used; tt++) used = routing.indices.subarray((b * T + tt) * topk, (b * T + tt + 1) * topk).includes(e);
      if (used) continue;
      const at = (e * B + b) * block;
      const i = firstDifference(initial.subarray(at, at + block), final.subarray(at, at + block));
      if (i >= 0) return `${label}: memory ${e} got no token of sequence ${b} but its final state differs from the initial one at element ${i}`;
    }
  return null;
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
    const dims = { B, T, E, topk, block: H * dk * dv }; // block: one (e, b) pair, all heads
    const routing = route(x.logits, B, T, E, topk);
    const state = new MomState(t.ref, cfg, initial);
    for (let tt = 0; tt < T; tt++) {
      const before = state.snapshot();
      state.step(sliceInputs(x, B, T, tt, tt + 1));
      const moved = movedUnselected(routing, dims, tt, before, state.snapshot(), 'step');
      if (moved) return exact(false, moved);
    }
    // The whole sequence at once: memories with no token of b end at their initial state.
    const whole = momForward(t.ref, cfg, x, { initial });
    const stayed = movedWithoutTokens(routing, dims, initial.routed, whole.final.routed, 'momForward');
    if (stayed) return exact(false, stayed);
    return exact(true);
  },
  describe: (c) => c,
};

/**
 * The same on the GPU: a forward (any kernel mode) leaves a memory that gets no token of
 * sequence b exactly at its initial state, and a decode step (GpuMomState.step) leaves every
 * memory the token does not select bit for bit unchanged (docs/spec.md §7: a step touches only the
 * selected memories and the shared one). Steps are capped at 8 per case (software driver).
 */
export type GpuInactiveCase = Required<CoreCase> & { mode: GpuMode };

const MAX_GPU_STEPS = 8;

export const gpuInactiveMemoryUnchanged: Property<GpuInactiveCase> = {
  id: 'gpu-inactive-memory-unchanged',
  title: 'GPU: a memory with no token keeps its state bit for bit (forward and decode steps)',
  needsGpu: true,
  perRule: true,
  applies: (t) => t.gpu !== undefined,
  arbitrary: (t, sizes) =>
    coreCaseArb(t.ref.inputs, sizes, { initial: false }).chain((c) =>
      fc.record({ initial: coreStateArb(c.cfg), mode: gpuModeArb(t.gpu!) }).map(({ initial, mode }) => ({ ...c, initial, mode })),
    ),
  async check(env, t, c) {
    const ctx = env.ctx!;
    const { cfg, x, initial } = c;
    const { B, T, H, E, topk, dk, dv } = cfg;
    const dims = { B, T, E, topk, block: H * dk * dv };
    const f32 = (a: Float64Array) => Float32Array.from(a); // the GPU holds the initial state in float32
    const routing = route(x.logits, B, T, E, topk);
    const whole = await checkedForward(ctx, t.gpu!, cfg, x, { ...forwardMode(c.mode), initial });
    const stayed = movedWithoutTokens(routing, dims, f32(initial.routed), whole.final.routed, `${c.mode} forward`);
    if (stayed) return exact(false, stayed);
    // Decode: the last few tokens one step at a time, after a prefill of the rest.
    const p = Math.max(0, T - MAX_GPU_STEPS);
    const probed = probeCanaries(ctx, t.gpu!);
    const st = await GpuMomState.create(ctx, probed.rule, cfg, { initial, maxPrefill: T });
    try {
      if (p > 0) await st.prefill(sliceInputs(x, B, T, 0, p), p);
      for (let tt = p; tt < T; tt++) {
        const before = await st.snapshot();
        await st.step(sliceInputs(x, B, T, tt, tt + 1));
        const moved = movedUnselected(routing, dims, tt, before, await st.snapshot(), 'decode step');
        if (moved) return exact(false, moved);
      }
      await probed.verify();
    } finally {
      await st.destroy();
    }
    return exact(true);
  },
  describe: (c) => c,
};
