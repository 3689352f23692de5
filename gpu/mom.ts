/**
 * One MoM forward on the GPU (docs/spec.md §4, gathered form), with no readback in between:
 *
 *   router -> gather (rank, offsets, scatter) -> gathered rows of q and of each rule input
 *          -> the rule's varlen kernel (gpu/kernels/<rule>.ts) -> mix (after or before)
 *
 * `ForwardPlan` allocates and binds everything for one set of sizes once, so that decode
 * (gpu/decode.ts) can reuse a plan for T = 1 step after step without allocating.
 */
import { ConfigError, GpuError, ShapeError } from '../reference/errors.js';
import { checkTopk } from '../reference/router.js';
import { validateCore, validateState } from '../reference/validate.js';
import { scaleOf } from '../reference/mom.js';
import type { CoreConfig, CoreInputs, CoreState, RouteMix, Rule } from '../reference/types.js';
import { widthOf } from '../reference/types.js';
import { CANARY_BITS, CANARY_WORDS, mapWords, outputBuffer, readback, scratchBuffer, upload, Usage } from './buffers.js';
import type { GpuContext } from './device.js';
import { withErrorScope } from './device.js';
import { threadGrid, type Prepared } from './grid.js';
import { positionsOf, prepareGather, prepareRows, segmentsOf, type GatherDims } from './kernels/gather.js';
import { prepareMix } from './kernels/mix.js';
import { prepareRouter } from './kernels/router.js';
import { CHUNK_SIZES, type ChunkSize, type GpuRule, type KernelMode, type RuleDims } from './kernels/types.js';

export interface ForwardOptions {
  /** the rule kernel: chunkwise-parallel or token by token (must be in rule.modes) */
  mode: KernelMode;
  /** chunk size for mode 'chunk' (default 64) */
  chunk?: ChunkSize;
  /**
   * 'after' (default): weighted sum of the memories' outputs. 'before': read the weighted sum of
   * the states; it needs the state after every token, which only the 'recurrent' kernels write,
   * so it always runs them (whatever `mode` says) and needs a read-out linear in the state.
   */
  mix?: RouteMix;
  /** routed [E, B, H, dk, dv] and shared [B, H, dk, dv] states to start from; zeros otherwise */
  initial?: CoreState;
}

export interface GpuState {
  routed: Float32Array;
  shared: Float32Array | null;
}

const DEFAULT_CHUNK: ChunkSize = 64;

/** The kernel options a forward runs with; mix 'before' needs the per-token states (history). */
export function kernelOptions(rule: GpuRule, opts: Pick<ForwardOptions, 'mode' | 'chunk' | 'mix'>): { mode: KernelMode; chunk?: ChunkSize } {
  const mix = opts.mix ?? 'after';
  if (mix !== 'after' && mix !== 'before') throw new ConfigError(`mix must be 'after' or 'before', got '${String(mix)}'`);
  if (mix === 'before') {
    if (!rule.readLinear) {
      throw new ConfigError(`rule '${rule.name}' has a read-out that is not linear in the state: mix 'before' is not supported for it (use mix 'after')`);
    }
    // Only the token-by-token kernels can write the state after every token.
    if (!rule.modes.includes('recurrent')) {
      throw new ConfigError(`rule '${rule.name}' has no 'recurrent' kernel, which mix 'before' needs (its states after each token)`);
    }
    return { mode: 'recurrent' };
  }
  if (!rule.modes.includes(opts.mode)) {
    throw new ConfigError(`rule '${rule.name}' has no '${String(opts.mode)}' kernel; it has: ${rule.modes.join(', ')}`);
  }
  if (opts.mode !== 'chunk') return { mode: opts.mode };
  const chunk = opts.chunk ?? DEFAULT_CHUNK;
  if (!(CHUNK_SIZES as readonly number[]).includes(chunk)) {
    throw new ConfigError(`chunk size must be one of ${CHUNK_SIZES.join(', ')}, got ${chunk}`);
  }
  return { mode: 'chunk', chunk };
}

type Sizes = Pick<CoreConfig, 'B' | 'T' | 'H' | 'E' | 'topk' | 'dk' | 'dv' | 'shared'>;

/** Every buffer of a forward with its size in bytes (canaries included), before allocating any. */
export function forwardBuffers(rule: Pick<GpuRule, 'inputs'>, cfg: Sizes, mix: RouteMix = 'after'): { label: string; bytes: number }[] {
  const { B, T, H, E, topk: K, dk, dv } = cfg;
  const d: GatherDims = { B, T, E, K, shared: cfg.shared };
  const S = segmentsOf(d);
  const P = positionsOf(d);
  const out = (words: number) => (words + CANARY_WORDS) * 4;
  const list = [
    { label: 'logits', bytes: 4 * B * T * E },
    { label: 'q', bytes: 4 * B * T * H * dk },
    // the routed memories' rows only: the shared memory's go straight into the gathered tails
    ...rule.inputs.map((i) => ({ label: `input ${i.name}`, bytes: 4 * E * B * T * H * widthOf(i.width, cfg) })),
    { label: 'indices', bytes: out(B * T * K) },
    { label: 'weights', bytes: out(B * T * K) },
    { label: 'slot', bytes: out(B * T * K) },
    { label: 'counts', bytes: out(E * B) },
    { label: 'cu', bytes: out(S + 1) },
    { label: 'origin', bytes: out(P) },
    { label: 'gathered q', bytes: out(P * H * dk) },
    ...rule.inputs.map((i) => ({ label: `gathered ${i.name}`, bytes: out(P * H * widthOf(i.width, cfg)) })),
    { label: 'state', bytes: out(S * H * dk * dv) },
    { label: 'gathered o', bytes: out(P * H * dv) },
    { label: 'o', bytes: out(B * T * H * dv) },
  ];
  if (mix === 'before') list.push({ label: 'history', bytes: out(P * H * dk * dv) });
  return list;
}

/**
 * Refuse, naming the limit, a forward whose buffers or dispatches are over the device's limits
 * (the dispatches are laid out on 2-D grids first, so only a truly oversized problem fails).
 */
export function checkForwardLimits(limits: GPUSupportedLimits, rule: Pick<GpuRule, 'inputs'>, cfg: Sizes, mix: RouteMix = 'after'): void {
  const maxBinding = limits.maxStorageBufferBindingSize;
  const maxBuffer = limits.maxBufferSize;
  for (const { label, bytes } of forwardBuffers(rule, cfg, mix)) {
    if (bytes > maxBinding) {
      throw new GpuError(`buffer '${label}' needs ${bytes} bytes, over the device limit maxStorageBufferBindingSize = ${maxBinding} (B=${cfg.B} T=${cfg.T} H=${cfg.H} E=${cfg.E} k=${cfg.topk} dk=${cfg.dk} dv=${cfg.dv}${mix === 'before' ? ', mix before' : ''})`);
    }
    if (bytes > maxBuffer) throw new GpuError(`buffer '${label}' needs ${bytes} bytes, over the device limit maxBufferSize = ${maxBuffer}`);
  }
  const P = positionsOf({ B: cfg.B, T: cfg.T, E: cfg.E, K: cfg.topk, shared: cfg.shared });
  const widest = Math.max(cfg.dk, cfg.dv);
  threadGrid(limits, P * cfg.H * widest, 256, 'gathering the rule inputs');
  threadGrid(limits, cfg.B * cfg.T * cfg.H * cfg.dv, 256, 'the mix');
}

/**
 * Initial state [S, H, dk, dv] = routed [E, B, H, dk, dv] then shared [B, H, dk, dv]: with
 * s = e*B + b that is exactly their concatenation. Checked (validateState) before converting.
 */
function initialWords(cfg: Omit<CoreConfig, 'T'>, initial: CoreState | undefined): Float32Array | undefined {
  if (!initial) return undefined;
  validateState(cfg, initial, 'initial state');
  const per = cfg.B * cfg.H * cfg.dk * cfg.dv;
  const words = new Float32Array((cfg.E + (cfg.shared ? 1 : 0)) * per);
  words.set(initial.routed);
  if (initial.shared) words.set(initial.shared, cfg.E * per);
  return words;
}

/** The state buffer [S, H, dk, dv] with the canary, zero or from `initial`. */
export function stateBuffer(ctx: GpuContext, cfg: Omit<CoreConfig, 'T'>, initial?: CoreState): GPUBuffer {
  const words = (cfg.E + (cfg.shared ? 1 : 0)) * cfg.B * cfg.H * cfg.dk * cfg.dv;
  return outputBuffer(ctx, 'state', words, initialWords(cfg, initial));
}

/** Split the read-back state [S, H, dk, dv] into routed and shared. */
export function splitState(cfg: Omit<CoreConfig, 'T'>, words: Float32Array): GpuState {
  const routed = cfg.E * cfg.B * cfg.H * cfg.dk * cfg.dv;
  return { routed: words.slice(0, routed), shared: cfg.shared ? words.slice(routed) : null };
}

export interface PlanOptions {
  mode: KernelMode;
  chunk?: ChunkSize;
  mix?: RouteMix;
  /** a state buffer [S, H, dk, dv] owned by the caller (decode); else one is made from `initial` */
  state?: GPUBuffer;
  initial?: CoreState;
}

/** All buffers, pipelines and bind groups of one forward for fixed sizes. */
export class ForwardPlan {
  readonly o: GPUBuffer;
  readonly state: GPUBuffer;
  readonly words: { o: number; state: number };
  private readonly owned: GPUBuffer[] = [];
  private readonly canaried: { buf: GPUBuffer; words: number }[] = [];
  private readonly inputs: { logits: GPUBuffer; q: GPUBuffer; memories: GPUBuffer[] };
  /** the gathered q and rule inputs [P, H, width]: the shared memory's positions are written directly */
  private readonly gathered: { q: GPUBuffer; memories: GPUBuffer[]; routedPositions: number };
  private readonly host: Float32Array;
  private readonly front: Prepared[];
  private readonly mixer: Prepared;
  private readonly ruleCall: (enc: GPUCommandEncoder) => void;

  private constructor(
    private readonly ctx: GpuContext,
    private readonly rule: GpuRule,
    private readonly cfg: CoreConfig,
    opts: PlanOptions,
  ) {
    const { B, T, H, E, topk: K, dk, dv, shared } = cfg;
    const mix = opts.mix ?? 'after';
    const kopts = kernelOptions(rule, { mode: opts.mode, chunk: opts.chunk, mix });
    checkForwardLimits(ctx.limits, rule, cfg, mix);
    const gd: GatherDims = { B, T, E, K, shared };
    const S = segmentsOf(gd);
    const P = positionsOf(gd);
    const own = <B extends GPUBuffer>(b: B): B => (this.owned.push(b), b);
    // Every output of a kernel carries a canary; verifyCanaries() checks them all after a run.
    const guarded = (label: string, words: number): GPUBuffer => {
      const buf = own(outputBuffer(ctx, label, words));
      this.canaried.push({ buf, words });
      return buf;
    };
    const widths = rule.inputs.map((i) => widthOf(i.width, cfg));

    this.inputs = {
      logits: own(scratchBuffer(ctx, 'logits', B * T * E)),
      q: own(scratchBuffer(ctx, 'q', B * T * H * dk)),
      memories: rule.inputs.map((i, n) => own(scratchBuffer(ctx, `input ${i.name}`, E * B * T * H * widths[n]))),
    };
    this.host = new Float32Array(Math.max(B * T * E, B * T * H * Math.max(dk, ...widths)));
    const indices = guarded('indices', B * T * K);
    const weights = guarded('weights', B * T * K);
    const slot = guarded('slot', B * T * K);
    const counts = guarded('counts', E * B);
    const cu = guarded('cu', S + 1);
    const origin = guarded('origin', P);
    const qG = guarded('gathered q', P * H * dk);
    const inputsG = rule.inputs.map((i, n) => guarded(`gathered ${i.name}`, P * H * widths[n]));
    // Positions [0, B·T·k) are the routed memories' (gathered on the device); the shared memory's
    // segment b is positions B·T·k + b·T + t, its tokens in order: the same layout as its inputs
    // [B, T, ...], so write() uploads them there and nothing copies them (copying q, k and v for
    // the shared rows cost a measurable part of a forward).
    const routedPositions = B * T * K;
    this.gathered = { q: qG, memories: inputsG, routedPositions };
    this.words = { o: B * T * H * dv, state: S * H * dk * dv };
    this.state = opts.state ?? own(stateBuffer(ctx, cfg, opts.initial));
    this.canaried.push({ buf: this.state, words: this.words.state });
    const oG = guarded('gathered o', P * H * dv);
    const history = mix === 'before' ? guarded('history', P * H * dk * dv) : undefined;
    this.o = guarded('o', this.words.o);

    const prepared = (p: Prepared) => (p.owned.forEach(own), p);
    this.front = [
      prepared(prepareRouter(ctx, B * T, E, K, { logits: this.inputs.logits, indices, weights })),
      prepared(prepareGather(ctx, gd, { indices, slot, counts, cu, origin })),
      // q is scaled on the host (write), so every copy here is a plain copy
      prepared(prepareRows(ctx, 'gather q', routedPositions, H * dk, B * T, 1, origin, this.inputs.q, qG)),
      ...rule.inputs.map((i, n) => prepared(prepareRows(ctx, `gather ${i.name}`, routedPositions, H * widths[n], E * B * T, 1, origin, this.inputs.memories[n], inputsG[n]))),
    ];
    const dims: RuleDims = { segments: S, positions: P, H, dk, dv, sharedSegments: shared ? B : 0 };
    const buffers = { cu, q: qG, inputs: inputsG, state: this.state, o: oG, ...(history ? { history } : {}) };
    this.ruleCall = (enc) => rule.encode(ctx, enc, dims, buffers, kopts);
    this.mixer = prepared(
      prepareMix(ctx, mix, { B, T, E, K, H, dk, dv, shared, scale: 1 }, { slot, weights, cu, o: this.o, gathered: history ?? oG, q: this.inputs.q }),
    );
  }

  /** Validate sizes and limits, then allocate and bind (pipelines come from the device cache). */
  static async create(ctx: GpuContext, rule: GpuRule, cfg: CoreConfig, opts: PlanOptions): Promise<ForwardPlan> {
    return withErrorScope(ctx, `preparing the ${rule.name} forward`, () => new ForwardPlan(ctx, rule, cfg, opts));
  }

  /**
   * Copy the inputs to the device (float64 -> float32), reusing one host buffer. q is scaled here
   * (rounded once, from float64); the shared memory's inputs and q go straight to their gathered
   * positions.
   */
  write(x: CoreInputs): void {
    const { queue } = this.ctx.device;
    const put = (bufs: GPUBuffer[], offsetWords: number[], data: Float64Array, scale = 1) => {
      if (scale === 1) this.host.set(data);
      else for (let i = 0; i < data.length; i++) this.host[i] = data[i] * scale;
      bufs.forEach((buf, i) => queue.writeBuffer(buf, offsetWords[i] * 4, this.host, 0, data.length));
    };
    const { B, T, H, E, dk, shared } = this.cfg;
    const tail = this.gathered.routedPositions * H; // first row of the shared positions
    put([this.inputs.logits], [0], x.logits);
    put(shared ? [this.inputs.q, this.gathered.q] : [this.inputs.q], [0, tail * dk], x.q, scaleOf(this.cfg));
    this.rule.inputs.forEach((decl, n) => {
      const w = widthOf(decl.width, this.cfg);
      for (let e = 0; e < E; e++) put([this.inputs.memories[n]], [e * B * T * H * w], x.memories[e][decl.name]);
      if (shared) put([this.gathered.memories[n]], [tail * w], x.shared![decl.name]);
    });
  }

  /** Record the whole forward into `enc`. */
  encode(enc: GPUCommandEncoder): void {
    const front = enc.beginComputePass({ label: 'route and gather' });
    for (const k of this.front) k.encode(front);
    front.end();
    this.ruleCall(enc);
    const mix = enc.beginComputePass({ label: 'mix' });
    this.mixer.encode(mix);
    mix.end();
  }

  /** Labels of the route-and-gather kernels, in order (for the benchmark's per-kernel times). */
  frontLabels(): string[] {
    return ['router', 'gather: rank, offsets, scatter', 'gather q', ...this.rule.inputs.map((i) => `gather ${i.name}`)];
  }

  /** Benchmark: record only the first `count` route-and-gather kernels, only the rule's kernels, or only the mix. */
  encodePart(enc: GPUCommandEncoder, part: 'front' | 'rule' | 'mix', count = this.front.length): void {
    if (part === 'rule') return this.ruleCall(enc);
    const pass = enc.beginComputePass({ label: part });
    if (part === 'front') for (const k of this.front.slice(0, count)) k.encode(pass);
    else this.mixer.encode(pass);
    pass.end();
  }

  /** Run the recorded forward once (inputs already written). */
  async run(what: string): Promise<void> {
    await withErrorScope(this.ctx, what, () => {
      const enc = this.ctx.device.createCommandEncoder({ label: what });
      this.encode(enc);
      this.ctx.device.queue.submit([enc.finish()]);
    });
  }

  /**
   * Check the canary after every kernel output of this plan (router, gather, gathered rows, rule,
   * mix): one copy of each tail into one staging buffer, one map. Throws GpuError naming the
   * buffer a kernel overran.
   */
  async verifyCanaries(): Promise<void> {
    const bytes = CANARY_WORDS * 4;
    const staging = this.ctx.device.createBuffer({ label: 'canary check', size: bytes * this.canaried.length, usage: Usage.MAP_READ | Usage.COPY_DST });
    try {
      const enc = this.ctx.device.createCommandEncoder({ label: 'canary check' });
      this.canaried.forEach(({ buf, words }, n) => enc.copyBufferToBuffer(buf, words * 4, staging, n * bytes, bytes));
      this.ctx.device.queue.submit([enc.finish()]);
      const all = await mapWords(this.ctx, staging);
      this.canaried.forEach(({ buf, words }, n) => {
        const tail = all.subarray(n * CANARY_WORDS, (n + 1) * CANARY_WORDS);
        const bad = tail.findIndex((w) => w !== CANARY_BITS);
        if (bad >= 0) {
          throw new GpuError(`canary overwritten after buffer '${buf.label}' (${words} words), ${bad} words past its end: a kernel of the ${this.rule.name} forward wrote out of bounds`);
        }
      });
    } finally {
      staging.destroy();
    }
  }

  destroy(): void {
    for (const b of this.owned) b.destroy();
    this.owned.length = 0;
  }
}

/**
 * A GpuRule seen as the reference's Rule for validateCore, which checks the declaration (name,
 * distinct inputs with known widths) and needs step/read to exist; they are never called.
 */
export function declaredRule(rule: GpuRule): Rule {
  const unavailable = (): never => {
    throw new ConfigError(`rule '${rule.name}' is a GPU rule: it has no float64 step or read-out`);
  };
  return { name: rule.name, inputs: rule.inputs, readLinear: rule.readLinear, step: unavailable, read: unavailable };
}

/** Validation before touching the GPU: config, inputs and initial state (reference/validate.ts). */
export function validateForward(rule: GpuRule, cfg: CoreConfig, x: CoreInputs, initial?: CoreState): void {
  validateCore(declaredRule(rule), cfg, x, initial);
}

/** docs/spec.md §4 on the GPU: o [B, T, H, dv] and the final states. */
export async function gpuMomForward(ctx: GpuContext, rule: GpuRule, cfg: CoreConfig, x: CoreInputs, opts: ForwardOptions): Promise<{ o: Float32Array; final: GpuState }> {
  validateForward(rule, cfg, x, opts.initial);
  const plan = await ForwardPlan.create(ctx, rule, cfg, opts);
  try {
    plan.write(x);
    await plan.run(`${rule.name} forward`);
    await plan.verifyCanaries();
    const o = await readback(ctx, plan.o, plan.words.o);
    const state = await readback(ctx, plan.state, plan.words.state);
    return { o: o.slice(), final: splitState(cfg, state) };
  } finally {
    plan.destroy();
  }
}

function checkSizes(B: number, T: number): void {
  for (const [name, n] of [['B', B], ['T', T]] as const) {
    if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${name} must be a positive integer, got ${n}`);
  }
}

/** Prepare one kernel, record it in a pass of its own and submit it (the debug hooks below). */
async function runAlone(ctx: GpuContext, what: string, owned: GPUBuffer[], prepare: () => Prepared): Promise<void> {
  await withErrorScope(ctx, what, () => {
    const k = prepare();
    owned.push(...k.owned);
    const enc = ctx.device.createCommandEncoder({ label: what });
    const pass = enc.beginComputePass();
    k.encode(pass);
    pass.end();
    ctx.device.queue.submit([enc.finish()]);
  });
}

/** Debug hook: the GPU router alone. indices [B, T, k], weights [B, T, k]. */
export async function gpuRoute(ctx: GpuContext, logits: Float64Array, B: number, T: number, E: number, topk: number): Promise<{ indices: Int32Array; weights: Float32Array }> {
  checkTopk(topk, E);
  checkSizes(B, T);
  if (logits.length !== B * T * E) throw new ShapeError(`router logits must have length B*T*E = ${B * T * E}, got ${logits.length}`);
  for (let i = 0; i < logits.length; i++) {
    if (!Number.isFinite(logits[i])) throw new ShapeError(`router logit ${i} is not finite (${logits[i]})`);
  }
  const owned: GPUBuffer[] = [];
  try {
    const logitsBuf = upload(ctx, 'logits', logits);
    owned.push(logitsBuf);
    const indices = outputBuffer(ctx, 'indices', B * T * topk);
    const weights = outputBuffer(ctx, 'weights', B * T * topk);
    owned.push(indices, weights);
    await runAlone(ctx, 'router', owned, () => prepareRouter(ctx, B * T, E, topk, { logits: logitsBuf, indices, weights }));
    const idx = await readback(ctx, indices, B * T * topk);
    const w = await readback(ctx, weights, B * T * topk);
    return { indices: new Int32Array(idx.buffer.slice(0, idx.byteLength)), weights: w.slice() };
  } finally {
    owned.forEach((b) => b.destroy());
  }
}

/**
 * Debug hook: the GPU gather alone. cu [S+1] with segment s = e*B + b (e = E: shared),
 * tokens [P] with tokens[p] = t of the token at position p.
 */
export async function gpuGather(ctx: GpuContext, indices: Int32Array, B: number, T: number, E: number, topk: number, shared: boolean): Promise<{ cu: Uint32Array; tokens: Uint32Array }> {
  checkTopk(topk, E);
  checkSizes(B, T);
  if (indices.length !== B * T * topk) throw new ShapeError(`indices must have length B*T*k = ${B * T * topk}, got ${indices.length}`);
  // The kernels trust the router's output: k distinct memories in 0..E-1 per token.
  for (let tok = 0; tok < B * T; tok++) {
    const row = Array.from(indices.subarray(tok * topk, (tok + 1) * topk));
    for (const e of row) {
      if (!Number.isInteger(e) || e < 0 || e >= E) throw new ShapeError(`indices[${tok * topk + row.indexOf(e)}] = ${e} is not a memory index in 0..${E - 1}`);
    }
    if (new Set(row).size !== topk) throw new ShapeError(`token ${tok} (b*T+t) routes twice to the same memory: [${row.join(', ')}]`);
  }
  const d: GatherDims = { B, T, E, K: topk, shared };
  const S = segmentsOf(d);
  const P = positionsOf(d);
  const owned: GPUBuffer[] = [];
  try {
    const idx = upload(ctx, 'indices', new Uint32Array(indices.buffer, indices.byteOffset, indices.length));
    const slot = outputBuffer(ctx, 'slot', B * T * topk);
    const counts = outputBuffer(ctx, 'counts', E * B);
    const cu = outputBuffer(ctx, 'cu', S + 1);
    const origin = outputBuffer(ctx, 'origin', P);
    owned.push(idx, slot, counts, cu, origin);
    await runAlone(ctx, 'gather', owned, () => prepareGather(ctx, d, { indices: idx, slot, counts, cu, origin }));
    const cuOut = new Uint32Array((await readback(ctx, cu, S + 1)).buffer.slice(0, (S + 1) * 4));
    const originOut = new Uint32Array((await readback(ctx, origin, P)).buffer.slice(0, P * 4));
    // origin = (e*B + b)*T + t; the token's time is origin mod T.
    return { cu: cuOut, tokens: originOut.map((o) => o % T) };
  } finally {
    owned.forEach((b) => b.destroy());
  }
}
