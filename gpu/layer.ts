/**
 * The fla-compatible MoM layer on the GPU (docs/spec.md §6, 7), float32, mirroring reference/layer.ts:
 *
 *   logits = x gate^T (matmul) -> router -> gather (gpu/kernels/gather.ts) -> gathered rows of x
 *   -> q = xG Wq^T; k, v, b, a = xG W_e^T per memory (segmented matmul over the gather's cu)
 *   -> short conv + SiLU per segment, from and to the conv caches -> l2norm (q scaled)
 *   -> beta, g -> gated-delta rule kernel (gpu/kernels/gated-delta.ts, varlen) -> mix after
 *   -> gated RMSNorm with silu(x Wg^T) -> y = (.) Wo^T
 *
 * A `LayerPlan` allocates and binds everything for fixed (B, T) once; its state (memories and
 * conv caches) lives in buffers owned by the caller, so `GpuLayerState` runs prefill plans and a
 * T = 1 step plan on the same state. A memory that gets no token has an empty segment: the rule
 * kernel leaves its state alone and the cache update keeps its cache.
 */
import { ConfigError, GpuError } from '../reference/errors.js';
import { checkLayerInput, checkLayerState, type LayerState } from '../reference/layer.js';
import { checkLayerWeights, layerDims, projNames, type LayerConfig, type LayerWeights } from '../reference/layer-config.js';
import { outputBuffer, readback, scratchBuffer, stagingBuffer, submitAndRead, upload } from './buffers.js';
import type { GpuContext } from './device.js';
import { withErrorScope } from './device.js';
import type { Prepared } from './grid.js';
import { positionsOf, prepareGather, prepareRows, segmentsOf, type GatherDims } from './kernels/gather.js';
import { getGpuRule } from './kernels/index.js';
import { prepareMix } from './kernels/mix.js';
import { prepareRouter } from './kernels/router.js';
import { CHUNK_SIZES, type ChunkSize, type GpuRule, type KernelMode } from './kernels/types.js';
import { prepareMatmul } from './kernels/matmul.js';
import { prepareConv } from './kernels/conv.js';
import { prepareGatedRmsNorm, prepareL2norm } from './kernels/norm.js';
import { prepareGates } from './kernels/gates.js';

const slotsOf = (c: LayerConfig) => c.num_memories + (c.shared_mem ? 1 : 0);

/** The layer's weights on the device; k/v/b/a stacked per slot [slots, out, D] (slot E: shared). */
export class GpuLayerWeights {
  private constructor(readonly buf: Record<string, GPUBuffer>) {}

  static upload(ctx: GpuContext, c: LayerConfig, w: LayerWeights): GpuLayerWeights {
    checkLayerWeights(w, c);
    const buf: Record<string, GPUBuffer> = {};
    for (const name of ['gate.weight', 'q_proj.weight', 'A_log', 'dt_bias', 'q_conv1d.weight', 'k_conv1d.weight', 'v_conv1d.weight', 'g_proj.weight', 'o_norm.weight', 'o_proj.weight']) {
      buf[name] = upload(ctx, name, w[name]);
    }
    for (const p of ['k', 'v', 'b', 'a'] as const) {
      const parts = Array.from({ length: slotsOf(c) }, (_, s) => w[projNames(c, s)[p]]);
      const stacked = new Float32Array(parts.reduce((n, t) => n + t.length, 0));
      let at = 0;
      for (const t of parts) stacked.set(t, (at += t.length) - t.length);
      buf[`${p} stacked`] = upload(ctx, `${p} projections (stacked)`, stacked);
    }
    return new GpuLayerWeights(buf);
  }

  destroy(): void {
    for (const b of Object.values(this.buf)) b.destroy();
  }
}

/** State buffers: memories [S, H, dk, dv] (routed then shared, S = slots*B) and conv caches [S, C, W-1]. */
export interface GpuLayerStateBuffers {
  state: GPUBuffer;
  conv: { q: GPUBuffer; k: GPUBuffer; v: GPUBuffer };
}

function stateWords(c: LayerConfig, B: number) {
  const { H, dk, dv, W } = layerDims(c);
  const S = slotsOf(c) * B;
  return { state: S * H * dk * dv, q: S * H * dk * (W - 1), k: S * H * dk * (W - 1), v: S * H * dv * (W - 1) };
}

export function layerStateBuffers(ctx: GpuContext, c: LayerConfig, B: number, initial?: LayerState): GpuLayerStateBuffers {
  const n = stateWords(c, B);
  let init: { state?: Float32Array; q?: Float32Array; k?: Float32Array; v?: Float32Array } = {};
  if (initial) {
    checkLayerState(c, B, initial);
    const state = new Float32Array(n.state);
    state.set(initial.routed);
    if (initial.shared) state.set(initial.shared, initial.routed.length);
    init = { state, q: Float32Array.from(initial.conv.q), k: Float32Array.from(initial.conv.k), v: Float32Array.from(initial.conv.v) };
  }
  return {
    state: outputBuffer(ctx, 'layer state', n.state, init.state),
    conv: { q: outputBuffer(ctx, 'conv cache q', n.q, init.q), k: outputBuffer(ctx, 'conv cache k', n.k, init.k), v: outputBuffer(ctx, 'conv cache v', n.v, init.v) },
  };
}

/** The final state read back: the layout of reference/layer.ts's LayerState, in float32. */
export interface GpuLayerStateOut {
  routed: Float32Array;
  shared: Float32Array | null;
  conv: { q: Float32Array; k: Float32Array; v: Float32Array };
}

export async function readLayerState(ctx: GpuContext, c: LayerConfig, B: number, s: GpuLayerStateBuffers): Promise<GpuLayerStateOut> {
  const n = stateWords(c, B);
  const state = await readback(ctx, s.state, n.state);
  const routed = c.num_memories * B * (n.state / (slotsOf(c) * B));
  return {
    routed: state.slice(0, routed),
    shared: c.shared_mem ? state.slice(routed) : null,
    conv: { q: (await readback(ctx, s.conv.q, n.q)).slice(), k: (await readback(ctx, s.conv.k, n.k)).slice(), v: (await readback(ctx, s.conv.v, n.v)).slice() },
  };
}

export interface LayerRunOptions {
  /** rule kernel mode; default 'chunk' */
  mode?: KernelMode;
  chunk?: ChunkSize;
}

function ruleOptions(rule: GpuRule, o: LayerRunOptions): { mode: KernelMode; chunk?: ChunkSize } {
  const mode = o.mode ?? 'chunk';
  if (!rule.modes.includes(mode)) throw new ConfigError(`the ${rule.name} GPU rule has no '${mode}' kernel; it has: ${rule.modes.join(', ')}`);
  if (mode !== 'chunk') return { mode };
  const chunk = o.chunk ?? 16;
  if (!(CHUNK_SIZES as readonly number[]).includes(chunk)) throw new ConfigError(`chunk size must be one of ${CHUNK_SIZES.join(', ')}, got ${chunk}`);
  return { mode, chunk };
}

/** Every buffer and kernel of one layer forward over [B, T] tokens, bound once. */
export class LayerPlan {
  readonly y: GPUBuffer;
  readonly logits: GPUBuffer;
  readonly words: { y: number; logits: number };
  private readonly x: GPUBuffer;
  private readonly host: Float32Array;
  private readonly owned: GPUBuffer[] = [];
  private readonly front: Prepared[] = [];
  private readonly back: Prepared[] = [];
  private readonly ruleCall: (enc: GPUCommandEncoder) => void;

  private constructor(
    private readonly ctx: GpuContext,
    readonly config: LayerConfig,
    weights: GpuLayerWeights,
    st: GpuLayerStateBuffers,
    readonly B: number,
    readonly T: number,
    opts: LayerRunOptions,
  ) {
    const c = config;
    const { D, H, dk, dv, E, W } = layerDims(c);
    const K = c.topk;
    const rule = getGpuRule('gated-delta');
    const kopts = ruleOptions(rule, opts);
    const gd: GatherDims = { B, T, E, K, shared: c.shared_mem };
    const S = segmentsOf(gd);
    const P = positionsOf(gd);
    const slots = slotsOf(c);
    const n = B * T;
    const own = <X extends GPUBuffer>(b: X): X => (this.owned.push(b), b);
    const prep = (list: Prepared[], p: Prepared) => (p.owned.forEach(own), list.push(p), p);
    const w = weights.buf;

    this.x = own(scratchBuffer(ctx, 'x', n * D));
    this.host = new Float32Array(n * D);
    this.logits = own(outputBuffer(ctx, 'router logits', n * E));
    this.words = { y: n * D, logits: n * E };
    const tokBounds = own(upload(ctx, 'bounds tokens', new Uint32Array([0, n])));
    const posBounds = own(upload(ctx, 'bounds positions', new Uint32Array([0, P])));
    const indices = own(outputBuffer(ctx, 'indices', n * K));
    const rweights = own(outputBuffer(ctx, 'routing weights', n * K));
    const slot = own(outputBuffer(ctx, 'slot', n * K));
    const counts = own(outputBuffer(ctx, 'counts', E * B));
    const cu = own(outputBuffer(ctx, 'cu', S + 1));
    const origin = own(outputBuffer(ctx, 'origin', P));
    const xG = own(outputBuffer(ctx, 'gathered x', P * D));
    const raw = { q: own(outputBuffer(ctx, 'q raw', P * H * dk)), k: own(outputBuffer(ctx, 'k raw', P * H * dk)), v: own(outputBuffer(ctx, 'v raw', P * H * dv)), b: own(outputBuffer(ctx, 'b raw', P * H)), a: own(outputBuffer(ctx, 'a raw', P * H)) };
    const q = own(outputBuffer(ctx, 'q', P * H * dk));
    const k = own(outputBuffer(ctx, 'k', P * H * dk));
    const v = own(outputBuffer(ctx, 'v', P * H * dv));
    const beta = own(outputBuffer(ctx, 'beta', P * H));
    const g = own(outputBuffer(ctx, 'g', P * H));
    const oG = own(outputBuffer(ctx, 'gathered o', P * H * dv));
    const o = own(outputBuffer(ctx, 'o', n * H * dv));
    const gate = own(outputBuffer(ctx, 'output gate', n * H * dv));
    const normed = own(outputBuffer(ctx, 'normed o', n * H * dv));
    this.y = own(outputBuffer(ctx, 'y', n * D));

    const dense = (label: string, N: number, Kin: number, rows: number, bounds: GPUBuffer, A: GPUBuffer, Wt: GPUBuffer, Y: GPUBuffer) =>
      prepareMatmul(ctx, label, { N, K: Kin, batches: 1, maxRows: rows, stride: 1, wBatch: 0 }, { bounds, A, W: Wt, Y });
    // per memory: batch z = slot z, rows [cu[z*B], cu[(z+1)*B]); at most B*T rows each
    const perMemory = (label: string, N: number, Wt: GPUBuffer, Y: GPUBuffer) =>
      prepareMatmul(ctx, label, { N, K: D, batches: slots, maxRows: n, stride: B, wBatch: N * D }, { bounds: cu, A: xG, W: Wt, Y });

    const F = this.front;
    prep(F, dense('router logits', E, D, n, tokBounds, this.x, w['gate.weight'], this.logits));
    prep(F, prepareRouter(ctx, n, E, K, { logits: this.logits, indices, weights: rweights }));
    prep(F, prepareGather(ctx, gd, { indices, slot, counts, cu, origin }));
    prep(F, prepareRows(ctx, 'gather x', P, D, n, 1, origin, this.x, xG));
    prep(F, dense('q_proj', H * dk, D, P, posBounds, xG, w['q_proj.weight'], raw.q));
    prep(F, perMemory('k_proj', H * dk, w['k stacked'], raw.k));
    prep(F, perMemory('v_proj', H * dv, w['v stacked'], raw.v));
    prep(F, perMemory('b_proj', H, w['b stacked'], raw.b));
    prep(F, perMemory('a_proj', H, w['a stacked'], raw.a));
    const convs = [
      prepareConv(ctx, 'q conv', { P, S, C: H * dk, W, T }, { cu, origin, x: raw.q, w: w['q_conv1d.weight'], cache: st.conv.q, y: q }),
      prepareConv(ctx, 'k conv', { P, S, C: H * dk, W, T }, { cu, origin, x: raw.k, w: w['k_conv1d.weight'], cache: st.conv.k, y: k }),
      prepareConv(ctx, 'v conv', { P, S, C: H * dv, W, T }, { cu, origin, x: raw.v, w: w['v_conv1d.weight'], cache: st.conv.v, y: v }),
    ];
    // every conv reads its cache before any cache moves on
    for (const cv of convs) prep(F, cv.conv);
    for (const cv of convs) prep(F, cv.update);
    prep(F, prepareL2norm(ctx, 'l2norm q', P * H, dk, dk ** -0.5, q));
    prep(F, prepareL2norm(ctx, 'l2norm k', P * H, dk, 1, k));
    prep(F, prepareGates(ctx, P, H, { braw: raw.b, araw: raw.a, A_log: w.A_log, dt_bias: w.dt_bias, beta, g }));

    const byName: Record<string, GPUBuffer> = { k, v, g, beta };
    const inputs = rule.inputs.map((d) => {
      const b = byName[d.name];
      if (!b) throw new GpuError(`the gated-delta GPU rule declares an input '${d.name}' the layer does not make (it makes k, v, g, beta)`);
      return b;
    });
    const dims = { segments: S, positions: P, H, dk, dv };
    this.ruleCall = (enc) => rule.encode(ctx, enc, dims, { cu, q, inputs, state: st.state, o: oG }, kopts);

    const Bk = this.back;
    prep(Bk, prepareMix(ctx, 'after', { B, T, E, K, H, dk, dv, shared: c.shared_mem, scale: 1 }, { slot, weights: rweights, cu, o, gathered: oG }));
    prep(Bk, dense('g_proj', H * dv, D, n, tokBounds, this.x, w['g_proj.weight'], gate));
    prep(Bk, prepareGatedRmsNorm(ctx, n * H, dv, c.norm_eps, { o, gate, weight: w['o_norm.weight'], y: normed }));
    prep(Bk, dense('o_proj', D, H * dv, n, tokBounds, normed, w['o_proj.weight'], this.y));
  }

  static async create(ctx: GpuContext, c: LayerConfig, weights: GpuLayerWeights, st: GpuLayerStateBuffers, B: number, T: number, opts: LayerRunOptions = {}): Promise<LayerPlan> {
    return withErrorScope(ctx, `preparing the layer forward (B=${B}, T=${T})`, () => new LayerPlan(ctx, c, weights, st, B, T, opts));
  }

  write(x: Float64Array): void {
    this.host.set(x);
    this.ctx.device.queue.writeBuffer(this.x, 0, this.host);
  }

  encode(enc: GPUCommandEncoder): void {
    const front = enc.beginComputePass({ label: 'layer: route, gather, project, conv, norms' });
    for (const k of this.front) k.encode(front);
    front.end();
    this.ruleCall(enc);
    const back = enc.beginComputePass({ label: 'layer: mix, gated norm, o_proj' });
    for (const k of this.back) k.encode(back);
    back.end();
  }

  destroy(): void {
    for (const b of this.owned) b.destroy();
    this.owned.length = 0;
  }
}

/** The layer over x [B, T, D] from `initial` (default zero): y [B, T, D], router logits, final state. */
export async function gpuLayerForward(
  ctx: GpuContext,
  c: LayerConfig,
  w: LayerWeights,
  x: Float64Array,
  B: number,
  T: number,
  opts: LayerRunOptions & { initial?: LayerState } = {},
): Promise<{ y: Float32Array; logits: Float32Array; final: GpuLayerStateOut }> {
  checkLayerWeights(w, c);
  checkLayerInput(c, x, B, T);
  const weights = GpuLayerWeights.upload(ctx, c, w);
  const st = layerStateBuffers(ctx, c, B, opts.initial);
  let plan: LayerPlan | null = null;
  try {
    plan = await LayerPlan.create(ctx, c, weights, st, B, T, opts);
    plan.write(x);
    const p = plan;
    await withErrorScope(ctx, 'layer forward', () => {
      const enc = ctx.device.createCommandEncoder({ label: 'layer forward' });
      p.encode(enc);
      ctx.device.queue.submit([enc.finish()]);
    });
    const y = (await readback(ctx, plan.y, plan.words.y)).slice();
    const logits = (await readback(ctx, plan.logits, plan.words.logits)).slice();
    return { y, logits, final: await readLayerState(ctx, c, B, st) };
  } finally {
    plan?.destroy();
    weights.destroy();
    for (const b of [st.state, st.conv.q, st.conv.k, st.conv.v]) b.destroy();
  }
}

/**
 * Layer decode on the GPU (docs/spec.md §7): the state and conv caches stay on the device; prefill runs a
 * plan over T tokens (kept for the next prefill of the same T), step a T = 1 plan made at create
 * (rule kernel 'recurrent'), which allocates nothing per step.
 */
export class GpuLayerState {
  private seen = 0;
  private prefillPlan: LayerPlan | null = null;
  private busy: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly ctx: GpuContext,
    readonly config: LayerConfig,
    readonly B: number,
    private readonly weights: GpuLayerWeights,
    private readonly st: GpuLayerStateBuffers,
    private readonly stepPlan: LayerPlan,
    private readonly staging: GPUBuffer,
    private readonly opts: LayerRunOptions,
  ) {}

  static async create(ctx: GpuContext, c: LayerConfig, w: LayerWeights, B: number, opts: LayerRunOptions & { initial?: LayerState } = {}): Promise<GpuLayerState> {
    if (!Number.isInteger(B) || B < 1) throw new ConfigError(`layer state: B must be a positive integer, got ${B}`);
    const weights = GpuLayerWeights.upload(ctx, c, w);
    let st: GpuLayerStateBuffers | null = null;
    let stepPlan: LayerPlan | null = null;
    try {
      st = layerStateBuffers(ctx, c, B, opts.initial);
      // a step is one token per segment at most: the token-by-token kernel is the cheaper one
      stepPlan = await LayerPlan.create(ctx, c, weights, st, B, 1, { mode: 'recurrent' });
      const staging = stagingBuffer(ctx, 'layer step y:readback', stepPlan.words.y);
      return new GpuLayerState(ctx, c, B, weights, st, stepPlan, staging, opts);
    } catch (e) {
      stepPlan?.destroy();
      weights.destroy();
      if (st) for (const b of [st.state, st.conv.q, st.conv.k, st.conv.v]) b.destroy();
      throw e;
    }
  }

  get tokensSeen(): number {
    return this.seen;
  }

  /** Bytes of float32 state on the device (memories and conv caches), whatever the tokens seen. */
  get byteSize(): number {
    const n = stateWords(this.config, this.B);
    return 4 * (n.state + n.q + n.k + n.v);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.busy.then(fn, fn);
    this.busy = run.catch(() => undefined);
    return run;
  }

  /** x [B, T, D] -> y [B, T, D] from the current state. */
  prefill(x: Float64Array, T: number): Promise<Float32Array> {
    return this.exclusive(async () => {
      checkLayerInput(this.config, x, this.B, T);
      if (this.prefillPlan?.T !== T) {
        this.prefillPlan?.destroy();
        this.prefillPlan = null;
        this.prefillPlan = await LayerPlan.create(this.ctx, this.config, this.weights, this.st, this.B, T, this.opts);
      }
      const plan = this.prefillPlan;
      plan.write(x);
      await withErrorScope(this.ctx, 'layer prefill', () => {
        const enc = this.ctx.device.createCommandEncoder({ label: 'layer prefill' });
        plan.encode(enc);
        this.ctx.device.queue.submit([enc.finish()]);
      });
      this.seen += T;
      return (await readback(this.ctx, plan.y, plan.words.y)).slice();
    });
  }

  /** One token per sequence: x [B, D] -> y [B, D]; allocates no GPU buffer. */
  step(x: Float64Array): Promise<Float32Array> {
    return this.exclusive(async () => {
      checkLayerInput(this.config, x, this.B, 1);
      const plan = this.stepPlan;
      plan.write(x);
      const y = await submitAndRead(this.ctx, 'layer step', (enc) => plan.encode(enc), plan.y, plan.words.y, this.staging);
      this.seen += 1;
      return y;
    });
  }

  snapshot(): Promise<GpuLayerStateOut> {
    return this.exclusive(() => readLayerState(this.ctx, this.config, this.B, this.st));
  }

  destroy(): Promise<void> {
    return this.exclusive(async () => {
      this.prefillPlan?.destroy();
      this.stepPlan.destroy();
      this.staging.destroy();
      this.weights.destroy();
      for (const b of [this.st.state, this.st.conv.q, this.st.conv.k, this.st.conv.v]) b.destroy();
    });
  }
}
