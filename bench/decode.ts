/**
 * Decode latency (SPEC 7) through the public GpuMomState: prefill the context in pieces (chunked
 * kernels), then time single steps (route, update the selected memories and the shared one, read
 * out, result back on the host) by wall clock, at several context lengths. The state size is read
 * from the object and compared with SPEC 7's formula (core form: (E+1)·B·H·dk·dv floats).
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
}

export async function benchDecode(ctx: GpuContext, timer: GpuTimer, shape: DecodeShape, contexts: number[], piece: number, steps: number): Promise<DecodeResult> {
  const cfg = { ...shape, shared: true };
  const state = await GpuMomState.create(ctx, gatedDelta, cfg, { mode: 'chunk', chunk: 64 });
  const rows: DecodeRow[] = [];
  try {
    const prefillInputs = benchInputs({ ...cfg, T: piece }, 11);
    const stepInputs = Array.from({ length: 8 }, (_, i) => benchInputs({ ...cfg, T: 1 }, 100 + i));
    for (const context of contexts) {
      // whole pieces only (one prefill plan); the steps timed before add a few tokens, so the
      // context reached is within one piece below the target, and reported as reached
      while (state.tokensSeen + piece <= context) await state.prefill(prefillInputs, piece);
      const reached = state.tokensSeen;
      // warm-up: the first steps after a prefill run slower (clocks, caches); 30 settle them
      for (let i = 0; i < 30; i++) await state.step(stepInputs[i % 8]);
      const all: number[] = [];
      for (let i = 0; i < steps; i++) {
        const t0 = performance.now();
        await state.step(stepInputs[i % 8]);
        all.push(performance.now() - t0);
      }
      rows.push({ target: context, context: reached, ms: median(all), repeats: all });
    }
  } finally {
    await state.destroy();
  }
  // The device time of a step at each context: the same plans as GpuMomState (chunked prefill,
  // token-by-token T = 1 step) on one state buffer, steps bracketed by GPU timestamps. Separates
  // the kernels' time from the host round trip (mapAsync), which dominates the wall clock.
  const stateBuf = stateBuffer(ctx, cfg);
  const prefill = await ForwardPlan.create(ctx, gatedDelta, { ...cfg, T: piece }, { mode: 'chunk', chunk: 64, state: stateBuf });
  const step = await ForwardPlan.create(ctx, gatedDelta, { ...cfg, T: 1 }, { mode: 'recurrent', state: stateBuf });
  const deviceRows: DecodeRow[] = [];
  try {
    prefill.write(benchInputs({ ...cfg, T: piece }, 11));
    step.write(benchInputs({ ...cfg, T: 1 }, 7));
    let seen = 0;
    for (const context of contexts) {
      while (seen + piece <= context) {
        await prefill.run('decode bench prefill');
        seen += piece;
      }
      const m = await timer.median((enc) => step.encode(enc), steps, 10);
      deviceRows.push({ target: context, context: seen, ms: m.ms, repeats: m.repeats });
      seen += steps + 10;
    }
  } finally {
    prefill.destroy();
    step.destroy();
    stateBuf.destroy();
  }
  const stepDeviceMs = median(deviceRows.map((r) => r.ms));
  return {
    deviceRows,
    shape,
    rows,
    stateBytes: state.byteSize,
    formulaBytes: 4 * (shape.E + 1) * shape.B * shape.H * shape.dk * shape.dv,
    stepDeviceMs,
  };
}
