/**
 * Constant-state decode on the GPU (docs/spec.md §7), mirroring reference/state.ts: the states of all
 * memories live in one device buffer [S, H, dk, dv] for the whole session.
 *
 *  - prefill(x, T) runs the forward over T tokens starting from the current state (any number
 *    of times, in pieces);
 *  - step(x) is the same forward with T = 1: the router picks k memories, the gather makes k+1
 *    one-token segments (plus empty ones for the other memories, whose states the rule kernel
 *    leaves alone), so only the selected memories and the shared one move.
 *
 * A step allocates nothing: its plan (inputs, gathered buffers, uniforms, bind groups) and a
 * staging buffer for the output are made once at create; inputs go in with queue.writeBuffer.
 */
import { ConfigError, GpuError } from '../reference/errors.js';
import type { CoreConfig, CoreInputs, CoreState } from '../reference/types.js';
import { validateConfig } from '../reference/validate.js';
import { readback, stagingBuffer, submitAndRead } from './buffers.js';
import type { GpuContext } from './device.js';
import { ForwardPlan, splitState, stateBuffer, validateForward, type GpuState } from './mom.js';
import type { ChunkSize, GpuRule, KernelMode } from './kernels/types.js';

export interface GpuMomStateOptions {
  /** the longest prefill accepted (a longer one is refused with a ConfigError) */
  maxPrefill?: number;
  initial?: CoreState;
  /** kernel for prefill; default 'chunk' when the rule has it (steps use 'recurrent' when available) */
  mode?: KernelMode;
  chunk?: ChunkSize;
}

export class GpuMomState {
  /** bytes of state on the device: 4 * (E + shared) * B * H * dk * dv, whatever the tokens seen */
  readonly byteSize: number;
  private seen = 0;
  private prefillPlan: { T: number; plan: ForwardPlan } | null = null;
  private busy: Promise<unknown> = Promise.resolve();
  private destroyed = false;

  private constructor(
    private readonly ctx: GpuContext,
    private readonly rule: GpuRule,
    private readonly cfg: Omit<CoreConfig, 'T'>,
    private readonly opts: GpuMomStateOptions,
    private readonly state: GPUBuffer,
    private readonly stepPlan: ForwardPlan,
    private readonly staging: GPUBuffer,
  ) {
    this.byteSize = 4 * (cfg.E + (cfg.shared ? 1 : 0)) * cfg.B * cfg.H * cfg.dk * cfg.dv;
  }

  static async create(ctx: GpuContext, rule: GpuRule, cfg: Omit<CoreConfig, 'T'>, opts: GpuMomStateOptions = {}): Promise<GpuMomState> {
    validateConfig({ ...cfg, T: 1 });
    if (opts.maxPrefill !== undefined && (!Number.isInteger(opts.maxPrefill) || opts.maxPrefill < 1)) {
      throw new ConfigError(`maxPrefill must be a positive integer, got ${opts.maxPrefill}`);
    }
    const state = stateBuffer(ctx, cfg, opts.initial);
    try {
      const stepMode: KernelMode = rule.modes.includes('recurrent') ? 'recurrent' : 'chunk';
      const stepPlan = await ForwardPlan.create(ctx, rule, { ...cfg, T: 1 }, { mode: stepMode, chunk: opts.chunk, state });
      const staging = stagingBuffer(ctx, 'step o:readback', stepPlan.words.o);
      return new GpuMomState(ctx, rule, cfg, opts, state, stepPlan, staging);
    } catch (e) {
      state.destroy();
      throw e;
    }
  }

  get tokensSeen(): number {
    return this.seen;
  }

  /** One call at a time: the step's staging buffer and the state are shared by all calls. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const guarded = () => {
      if (this.destroyed) throw new GpuError('this GpuMomState was destroyed; create a new one');
      return fn();
    };
    const run = this.busy.then(guarded, guarded);
    this.busy = run.catch(() => undefined);
    return run;
  }

  /** Run T tokens from the current state; returns o [B, T, H, dv]. */
  prefill(x: CoreInputs, T: number): Promise<Float32Array> {
    return this.exclusive(async () => {
      const cfg: CoreConfig = { ...this.cfg, T };
      validateForward(this.rule, cfg, x);
      if (this.opts.maxPrefill !== undefined && T > this.opts.maxPrefill) {
        throw new ConfigError(`prefill of T = ${T} tokens is over maxPrefill = ${this.opts.maxPrefill}`);
      }
      if (this.prefillPlan?.T !== T) {
        this.prefillPlan?.plan.destroy();
        this.prefillPlan = null;
        const mode = this.opts.mode ?? (this.rule.modes.includes('chunk') ? 'chunk' : 'recurrent');
        this.prefillPlan = { T, plan: await ForwardPlan.create(this.ctx, this.rule, cfg, { mode, chunk: this.opts.chunk, state: this.state }) };
      }
      const { plan } = this.prefillPlan;
      plan.write(x);
      await plan.run(`${this.rule.name} prefill`);
      const o = await readback(this.ctx, plan.o, plan.words.o);
      this.seen += T;
      return o.slice();
    });
  }

  /** One token (inputs with T = 1); returns o [B, 1, H, dv]. Allocates no GPU buffer. */
  step(x: CoreInputs): Promise<Float32Array> {
    return this.exclusive(async () => {
      validateForward(this.rule, { ...this.cfg, T: 1 }, x);
      const plan = this.stepPlan;
      plan.write(x);
      const o = await submitAndRead(this.ctx, `${this.rule.name} decode step`, (enc) => plan.encode(enc), plan.o, plan.words.o, this.staging);
      this.seen += 1;
      return o;
    });
  }

  /** A copy of all states: routed [E, B, H, dk, dv], shared [B, H, dk, dv] or null. */
  snapshot(): Promise<GpuState> {
    return this.exclusive(async () => {
      const words = (this.cfg.E + (this.cfg.shared ? 1 : 0)) * this.cfg.B * this.cfg.H * this.cfg.dk * this.cfg.dv;
      return splitState(this.cfg, await readback(this.ctx, this.state, words));
    });
  }

  /** Free the device buffers; the object cannot be used afterwards. */
  destroy(): Promise<void> {
    return this.exclusive(async () => {
      this.prefillPlan?.plan.destroy();
      this.stepPlan.destroy();
      this.staging.destroy();
      this.state.destroy();
      this.destroyed = true;
    });
  }
}
