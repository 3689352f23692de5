/**
 * GPU timing for the benchmarks: an empty compute pass with `timestampWrites` before and after
 * the recorded work, so the figure is the device's own time between the two (Dawn's timestamp
 * quantisation is turned off in gpu/device.ts). Without the 'timestamp-query' feature, the
 * fallback is wall clock around submit + onSubmittedWorkDone, which includes the host round
 * trip: `kind` says which one a figure is.
 */
import { Usage } from '../gpu/buffers.js';
import type { GpuContext } from '../gpu/device.js';

export type TimingKind = 'gpu-timestamps' | 'wall-clock';

export const median = (a: readonly number[]): number => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Timestamps per timed submit: the start and the end of each of up to MARKS - 1 pieces. */
const MARKS = 8;

export class GpuTimer {
  readonly kind: TimingKind;
  private readonly querySet?: GPUQuerySet;
  private readonly resolve?: GPUBuffer;
  private readonly staging?: GPUBuffer;

  constructor(private readonly ctx: GpuContext) {
    this.kind = ctx.features.has('timestamp-query') ? 'gpu-timestamps' : 'wall-clock';
    if (this.kind === 'gpu-timestamps') {
      this.querySet = ctx.device.createQuerySet({ type: 'timestamp', count: MARKS });
      this.resolve = ctx.device.createBuffer({ size: 8 * MARKS, usage: Usage.QUERY_RESOLVE | Usage.COPY_SRC });
      this.staging = ctx.device.createBuffer({ size: 8 * MARKS, usage: Usage.MAP_READ | Usage.COPY_DST });
    }
  }

  /** Milliseconds the device spends on what `record` encodes (one submit, awaited). */
  async time(record: (enc: GPUCommandEncoder) => void): Promise<number> {
    const { device } = this.ctx;
    const enc = device.createCommandEncoder({ label: 'bench' });
    if (this.kind === 'wall-clock') {
      record(enc);
      const t0 = performance.now();
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
      return performance.now() - t0;
    }
    const qs = this.querySet!;
    enc.beginComputePass({ label: 't0', timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0 } }).end();
    record(enc);
    enc.beginComputePass({ label: 't1', timestampWrites: { querySet: qs, endOfPassWriteIndex: 1 } }).end();
    enc.resolveQuerySet(qs, 0, 2, this.resolve!, 0);
    enc.copyBufferToBuffer(this.resolve!, 0, this.staging!, 0, 16);
    device.queue.submit([enc.finish()]);
    await this.staging!.mapAsync(0x1);
    const t = new BigUint64Array(this.staging!.getMappedRange().slice(0));
    this.staging!.unmap();
    this.ctx.checkHealthy();
    return Number(t[1] - t[0]) / 1e6;
  }

  /**
   * Milliseconds of each piece of one submit: a timestamp before the first piece and after each
   * (GPU timestamps only; undefined on the wall-clock fallback).
   */
  async timePieces(pieces: ((enc: GPUCommandEncoder) => void)[]): Promise<number[] | undefined> {
    if (this.kind === 'wall-clock') return undefined;
    if (pieces.length >= MARKS) throw new Error(`timePieces: at most ${MARKS - 1} pieces`);
    const { device } = this.ctx;
    const qs = this.querySet!;
    const enc = device.createCommandEncoder({ label: 'bench pieces' });
    enc.beginComputePass({ label: 'mark 0', timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0 } }).end();
    pieces.forEach((record, i) => {
      record(enc);
      enc.beginComputePass({ label: `mark ${i + 1}`, timestampWrites: { querySet: qs, endOfPassWriteIndex: i + 1 } }).end();
    });
    enc.resolveQuerySet(qs, 0, pieces.length + 1, this.resolve!, 0);
    enc.copyBufferToBuffer(this.resolve!, 0, this.staging!, 0, 8 * MARKS);
    device.queue.submit([enc.finish()]);
    await this.staging!.mapAsync(0x1);
    const t = new BigUint64Array(this.staging!.getMappedRange().slice(0));
    this.staging!.unmap();
    this.ctx.checkHealthy();
    return pieces.map((_, i) => Number(t[i + 1] - t[i]) / 1e6);
  }

  /** `warmup` untimed runs, then the median (and every repeat) of `repeats` timed ones. */
  async median(record: (enc: GPUCommandEncoder) => void, repeats: number, warmup = 1): Promise<{ ms: number; repeats: number[] }> {
    for (let i = 0; i < warmup; i++) await this.time(record);
    const all: number[] = [];
    for (let i = 0; i < repeats; i++) all.push(await this.time(record));
    return { ms: median(all), repeats: all };
  }

  /**
   * Rounds of `repeats` timed runs (after `warmup` untimed ones) until a round's median agrees
   * with the previous round's within `tol` (at most `maxRounds`); the last round is reported.
   * The warm-up is at least `warmup` runs and at least `warmMs` milliseconds.
   * A fixed count of warm-up runs did not cover the runs the GPU needed to reach its clocks after
   * the correctness check.
   */
  async settledMedian(
    record: (enc: GPUCommandEncoder) => void,
    repeats: number,
    warmup = 1,
    tol = 0.03,
    maxRounds = 6,
    warmMs = 300,
  ): Promise<{ ms: number; repeats: number[]; rounds: number; settled: boolean }> {
    // Untimed runs for at least `warmMs` of wall clock too: a count of runs alone does not bring a
    // short kernel's clocks up (it settled at twice its later time).
    await this.busy(record, warmup, warmMs);
    let last = await this.median(record, repeats, 0);
    for (let round = 2; round <= maxRounds; round++) {
      const now = await this.median(record, repeats, 0);
      const agree = Math.abs(now.ms - last.ms) <= tol * last.ms;
      last = now;
      if (agree) return { ...now, rounds: round, settled: true };
    }
    return { ...last, rounds: maxRounds, settled: false };
  }

  /**
   * Warm-up that keeps the device busy: batches of 8 untimed runs submitted back to back (no wait
   * between them), at least `runs` runs and `ms` milliseconds. Timing one run at a time leaves the
   * device idle for a host round trip after each, and the first forward figures of a shape were
   * then bimodal or high.
   */
  private async busy(record: (enc: GPUCommandEncoder) => void, runs: number, ms: number): Promise<void> {
    const { device } = this.ctx;
    const t0 = performance.now();
    for (let n = 0; n < runs || performance.now() - t0 < ms; ) {
      for (let i = 0; i < 8; i++, n++) {
        const enc = device.createCommandEncoder({ label: 'warm-up' });
        record(enc);
        device.queue.submit([enc.finish()]);
      }
      await device.queue.onSubmittedWorkDone();
    }
    this.ctx.checkHealthy();
  }

  destroy(): void {
    this.querySet?.destroy();
    this.resolve?.destroy();
    this.staging?.destroy();
  }
}
