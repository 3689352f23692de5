/**
 * Decode latency (docs/spec.md §7) through the public GpuMomState: prefill the context in pieces (chunked
 * kernels), then time single steps (route, update the selected memories and the shared one, read
 * out, result back on the host) by wall clock, at several context lengths. The state size is read
 * from the object and compared with docs/spec.md §7's formula (core form: (E+1)·B·H·dk·dv floats).
 * Also the device time of one step alone (a T = 1 forward plan, GPU timestamps).
 */
import { GpuMomState } from '../gpu/decode.js';
import type { GpuContext } from '../gpu/device.js';
import { gatedDelta } from '../gpu/kernels/gated-delta.js';
import { ForwardPlan, stateBuffer } from '../gpu/mom.js';
import type { CoreConfig } from '../reference/types.js';
import { benchInputs } from './inputs.js';
import { median, type GpuTimer } from './timer.js';

export type DecodeShape = Omit<CoreConfig, 'T' | 'shared'>;

export interface DecodeRow {
  /** the context asked for, and the tokens actually in the state when the steps were timed */
  target: number;
  context: number;
  /** median wall-clock latency of one step, ms */
  ms: number;
  repeats: number[];
}

export interface DecodeResult {
  shape: DecodeShape;
  rows: DecodeRow[];
  stateBytes: number;
  formulaBytes: number;
  /** device time of one step's kernels (GPU timestamps or wall clock, as the timer says) */
  stepDeviceMs: number;
  /** the device time of one step at each context (GPU timestamps when available) */
  deviceRows: DecodeRow[];
  /** interleaved rounds until consecutive medians agreed (or the cap), wall clock and device */
  rounds: { wall: number; device: number };
}

/** Rounds of measurements at every context, interleaved, until the medians settle. */
const MAX_ROUNDS = 8;
/** consecutive rounds' medians within this fraction of each other count as settled */
const SETTLED = 0.03;

/**
 * One state per context (all prefilled first), then rounds in which each context in turn is
 * timed `steps` times; rounds repeat until every context's median agrees with its previous
 * round's within SETTLED (at most MAX_ROUNDS), and the last round is reported. Interleaving
 * keeps clock ramps and drift from lining up with the context; the settling rule replaces a
 * fixed warm-up, which was too short after a long prefill.
 */
async function interleaved(contexts: number[], time: (i: number) => Promise<{ ms: number; repeats: number[] }>) {
  let last: { ms: number; repeats: number[] }[] = [];
  let rounds = 0;
  for (; rounds < MAX_ROUNDS; rounds++) {
    const now: { ms: number; repeats: number[] }[] = [];
    for (let i = 0; i < contexts.length; i++) now.push(await time(i));
    const settled = last.length > 0 && now.every((m, i) => Math.abs(m.ms - last[i].ms) <= SETTLED * last[i].ms);
    last = now;
    if (settled) break;
  }
  return { results: last, rounds: rounds + 1 };
}

export async function benchDecode(ctx: GpuContext, timer: GpuTimer, shape: DecodeShape, contexts: number[], piece: number, steps: number): Promise<DecodeResult> {
  const cfg = { ...shape, shared: true };
  const stepInputs = Array.from({ length: 8 }, (_, i) => benchInputs({ ...cfg, T: 1 }, 100 + i));
  const prefillInputs = benchInputs({ ...cfg, T: piece }, 11);
  const states: GpuMomState[] = [];
  let rows: DecodeRow[];
  let wallRounds: number;
  let stateBytes = 0;
  try {
    for (const context of contexts) {
      const state = await GpuMomState.create(ctx, gatedDelta, cfg, { mode: 'chunk', chunk: 64 });
      states.push(state);
      // whole pieces only (one prefill plan): the context reached is within one piece below the target
      while (state.tokensSeen + piece <= context) await state.prefill(prefillInputs, piece);
    }
    stateBytes = states[0].byteSize;
    const reached = states.map((st) => st.tokensSeen);
    const r = await interleaved(contexts, async (i) => {
      const all: number[] = [];
      for (let n = 0; n < steps; n++) {
        const t0 = performance.now();
        await states[i].step(stepInputs[n % 8]);
        all.push(performance.now() - t0);
      }
      return { ms: median(all), repeats: all };
    });
    wallRounds = r.rounds;
    rows = contexts.map((target, i) => ({ target, context: reached[i], ms: r.results[i].ms, repeats: r.results[i].repeats }));
  } finally {
    for (const st of states) await st.destroy();
  }
  // The device time of a step at each context: the same plans as GpuMomState (chunked prefill,
  // token-by-token T = 1 step) on one state buffer per context, steps bracketed by GPU
  // timestamps. Separates the kernels' time from the host round trip (mapAsync), which
  // dominates the wall clock.
  const owned: { destroy(): void }[] = [];
  let deviceRows: DecodeRow[];
  let deviceRounds: number;
  try {
    const steppers: ForwardPlan[] = [];
    const seen: number[] = [];
    for (const context of contexts) {
      const stateBuf = stateBuffer(ctx, cfg);
      owned.push(stateBuf);
      const prefill = await ForwardPlan.create(ctx, gatedDelta, { ...cfg, T: piece }, { mode: 'chunk', chunk: 64, state: stateBuf });
      owned.push(prefill);
      prefill.write(prefillInputs);
      let n = 0;
      for (; n + piece <= context; n += piece) await prefill.run('decode bench prefill');
      const step = await ForwardPlan.create(ctx, gatedDelta, { ...cfg, T: 1 }, { mode: 'recurrent', state: stateBuf });
      owned.push(step);
      step.write(stepInputs[0]);
      steppers.push(step);
      seen.push(n);
    }
    const r = await interleaved(contexts, (i) => timer.median((enc) => steppers[i].encode(enc), steps, 10));
    deviceRounds = r.rounds;
    deviceRows = contexts.map((target, i) => ({ target, context: seen[i], ms: r.results[i].ms, repeats: r.results[i].repeats }));
  } finally {
    for (const o of owned) o.destroy();
  }
  const stepDeviceMs = median(deviceRows.map((r) => r.ms));
  return {
    deviceRows,
    shape,
    rows,
    stateBytes,
    formulaBytes: 4 * (shape.E + 1) * shape.B * shape.H * shape.dk * shape.dv,
    stepDeviceMs,
    rounds: { wall: wallRounds, device: deviceRounds },
  };
}
