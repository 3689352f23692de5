/**
 * docs/spec.md §6: the fla-compatible MoM layer in float64, in the gathered form fla and the GPU use:
 * route, gather each memory's tokens (stable), project, short conv + SiLU over the memory's own
 * subsequence, l2-normalise, gated delta rule per memory, scatter back with the routing weights,
 * add the shared memory, gated RMSNorm, output projection.
 *
 * The token-by-token form (decode) is reference/layer-state.ts; the property suite checks the
 * two against each other. Helpers used by both live here.
 *
 * Where fla's code differs from docs/spec.md (we follow the spec):
 *  - fla's ShortConvolution cache keeps the last W inputs; the state here keeps W-1 (the oldest
 *    input of fla's cache never reaches a later output). Layout [slot, B, C, W-1] = fla's
 *    cache[..., 1:].
 *  - fla switches to `fused_recurrent` for T <= 64 and pads subsequences shorter than W before
 *    its varlen conv; both are the same mathematics (zero history at a subsequence's start).
 *  - fla's `transform` orders tokens with `argsort` of (batch, memory) keys, which torch does not
 *    promise to be stable; docs/spec.md §4 requires time order inside a memory, which the gather here keeps.
 *  - fla picks the top-k with `torch.topk`, whose order among equal probabilities is unspecified;
 *    docs/spec.md §2 sends ties to the lower index.
 */
import { ShapeError } from './errors.js';
import { route } from './router.js';
import { getRule } from './rules/index.js';
import type { BuiltinRule } from './rules/types.js';
import { layerDims, projNames, checkLayerWeights, type LayerConfig, type LayerDims, type LayerWeights } from '../reference/layer-config.js';

/** Inference state of one layer for B sequences (docs/spec.md §7). Slot e < E is a routed memory; slot E the shared one. */
export interface LayerState {
  /** [E, B, H, dk, dv] */
  routed: Float64Array;
  /** [B, H, dk, dv] or null without a shared memory */
  shared: Float64Array | null;
  /** the last W-1 conv inputs, oldest first, per slot: q, k [M, B, H*dk, W-1]; v [M, B, H*dv, W-1]; M = E (+1 when shared) */
  conv: { q: Float64Array; k: Float64Array; v: Float64Array };
}

export const slotCount = (c: LayerConfig): number => c.num_memories + (c.shared_mem ? 1 : 0);

export function emptyLayerState(c: LayerConfig, B: number): LayerState {
  const { H, dk, dv, E, W } = layerDims(c);
  const M = slotCount(c);
  return {
    routed: new Float64Array(E * B * H * dk * dv),
    shared: c.shared_mem ? new Float64Array(B * H * dk * dv) : null,
    conv: { q: new Float64Array(M * B * H * dk * (W - 1)), k: new Float64Array(M * B * H * dk * (W - 1)), v: new Float64Array(M * B * H * dv * (W - 1)) },
  };
}

export function cloneLayerState(s: LayerState): LayerState {
  return { routed: s.routed.slice(), shared: s.shared?.slice() ?? null, conv: { q: s.conv.q.slice(), k: s.conv.k.slice(), v: s.conv.v.slice() } };
}

export function checkLayerState(c: LayerConfig, B: number, s: LayerState): void {
  const want = emptyLayerState(c, B);
  const parts: [string, Float64Array | null, Float64Array | null][] = [
    ['routed', s.routed, want.routed],
    ['shared', s.shared, want.shared],
    ['conv.q', s.conv.q, want.conv.q],
    ['conv.k', s.conv.k, want.conv.k],
    ['conv.v', s.conv.v, want.conv.v],
  ];
  for (const [name, got, exp] of parts) {
    if ((got === null) !== (exp === null) || (got && exp && got.length !== exp.length)) {
      throw new ShapeError(`layer state '${name}' has ${got?.length ?? 'no'} values, expected ${exp?.length ?? 'none'} for B = ${B}`);
    }
  }
}

export const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
export const silu = (x: number): number => x * sigmoid(x);
// log(1 + e^x) without overflow (torch's softplus switches to x above 20 too)
export const softplus = (x: number): number => (x > 20 ? x : Math.log1p(Math.exp(x)));

/** y [n, out] = x [n, in] W^T with W [out, in] (a torch Linear without bias). */
export function linear(x: Float64Array, n: number, W: Float64Array, out: number): Float64Array {
  const inn = W.length / out;
  const y = new Float64Array(n * out);
  for (let t = 0; t < n; t++) {
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let i = 0; i < inn; i++) s += x[t * inn + i] * W[o * inn + i];
      y[t * out + o] = s;
    }
  }
  return y;
}

/**
 * Causal depthwise conv + SiLU over one subsequence u [n, C] (docs/spec.md §6.3), continuing from `cache`
 * (C x (W-1), oldest first, updated in place to the last W-1 inputs).
 */
export function shortConv(u: Float64Array, n: number, C: number, w: Float64Array, W: number, cache: Float64Array): Float64Array {
  const y = new Float64Array(n * C);
  const h = W - 1;
  for (let c = 0; c < C; c++) {
    // the channel's history followed by its inputs: ext[j], j < h from the cache
    const ext = new Float64Array(h + n);
    for (let j = 0; j < h; j++) ext[j] = cache[c * h + j];
    for (let t = 0; t < n; t++) ext[h + t] = u[t * C + c];
    for (let t = 0; t < n; t++) {
      let s = 0;
      for (let i = 0; i < W; i++) s += w[c * W + i] * ext[t + i];
      y[t * C + c] = silu(s);
    }
    for (let j = 0; j < h; j++) cache[c * h + j] = ext[n + j];
  }
  return y;
}

/** Per head: x / sqrt(sum x^2 + 1e-6), times `scale` (docs/spec.md §6.4), in place on [n, H*d]. */
export function l2normHeads(x: Float64Array, n: number, H: number, d: number, scale = 1): void {
  for (let r = 0; r < n * H; r++) {
    let ss = 0;
    for (let i = 0; i < d; i++) ss += x[r * d + i] ** 2;
    const f = scale / Math.sqrt(ss + 1e-6);
    for (let i = 0; i < d; i++) x[r * d + i] *= f;
  }
}

/** beta = sigmoid(b), g = -exp(A_log) * softplus(a + dt_bias), per [n, H] (docs/spec.md §6.2). */
export function gates(braw: Float64Array, araw: Float64Array, n: number, H: number, A_log: Float64Array, dt_bias: Float64Array): { beta: Float64Array; g: Float64Array } {
  const beta = new Float64Array(n * H);
  const g = new Float64Array(n * H);
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < H; h++) {
      beta[t * H + h] = sigmoid(braw[t * H + h]);
      g[t * H + h] = -Math.exp(A_log[h]) * softplus(araw[t * H + h] + dt_bias[h]);
    }
  }
  return { beta, g };
}

/** Gated RMSNorm per head (docs/spec.md §6.7): o * rstd * weight * silu(gate), on [n, H*dv]. */
export function gatedRmsNorm(o: Float64Array, gate: Float64Array, n: number, H: number, dv: number, weight: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(n * H * dv);
  for (let r = 0; r < n * H; r++) {
    let ss = 0;
    for (let j = 0; j < dv; j++) ss += o[r * dv + j] ** 2;
    const rstd = 1 / Math.sqrt(ss / dv + eps);
    for (let j = 0; j < dv; j++) y[r * dv + j] = o[r * dv + j] * rstd * weight[j] * silu(gate[r * dv + j]);
  }
  return y;
}

/** One slot's per-token features for n gathered rows X [n, D]: projections, convs (advancing the slot's caches), norms, gates. */
export interface SlotFeatures {
  q: Float64Array; // [n, H*dk], normalised and scaled
  k: Float64Array; // [n, H*dk], normalised
  v: Float64Array; // [n, H*dv]
  g: Float64Array; // [n, H]
  beta: Float64Array; // [n, H]
}

/** The conv caches of (slot, b) as subarrays of the state. */
export function slotCaches(c: LayerConfig, s: LayerState, B: number, slot: number, b: number): { q: Float64Array; k: Float64Array; v: Float64Array } {
  const { H, dk, dv, W } = layerDims(c);
  const at = (C: number, buf: Float64Array) => buf.subarray((slot * B + b) * C * (W - 1), (slot * B + b + 1) * C * (W - 1));
  return { q: at(H * dk, s.conv.q), k: at(H * dk, s.conv.k), v: at(H * dv, s.conv.v) };
}

export function slotFeatures(c: LayerConfig, w: LayerWeights, slot: number, X: Float64Array, n: number, cache: { q: Float64Array; k: Float64Array; v: Float64Array }): SlotFeatures {
  const { H, dk, dv, W } = layerDims(c);
  const p = projNames(c, slot);
  const q = shortConv(linear(X, n, w['q_proj.weight'], H * dk), n, H * dk, w['q_conv1d.weight'], W, cache.q);
  const k = shortConv(linear(X, n, w[p.k], H * dk), n, H * dk, w['k_conv1d.weight'], W, cache.k);
  const v = shortConv(linear(X, n, w[p.v], H * dv), n, H * dv, w['v_conv1d.weight'], W, cache.v);
  l2normHeads(q, n, H, dk, dk ** -0.5);
  l2normHeads(k, n, H, dk);
  const { beta, g } = gates(linear(X, n, w[p.b], H), linear(X, n, w[p.a], H), n, H, w.A_log, w.dt_bias);
  return { q, k, v, g, beta };
}

/** Column h of a [n, H*width] array as [n*width]. */
export function headSlice(x: Float64Array, n: number, H: number, width: number, h: number): Float64Array {
  const out = new Float64Array(n * width);
  for (let t = 0; t < n; t++) out.set(x.subarray((t * H + h) * width, (t * H + h + 1) * width), t * width);
  return out;
}

export interface LayerOptions {
  initial?: LayerState;
  /** run the rule in its chunked form with this chunk size (default: token by token) */
  chunk?: number;
  /**
   * run only these memory slots (e < E routed, E shared): the read-out is then their part of the
   * mixed sum, which lets finite differences of one memory's weights skip the other memories
   */
  slots?: readonly number[];
}

export interface LayerOutputs {
  /** [B, T, D] */
  y: Float64Array;
  /** [B, T, E] */
  logits: Float64Array;
  /** the mixed memory read-out before the norm, [B, T, H, dv] (for debugging kernels) */
  o: Float64Array;
  final: LayerState;
}

export function checkLayerInput(c: LayerConfig, x: Float64Array, B: number, T: number): void {
  for (const [name, v] of [['B', B], ['T', T]] as const) if (!Number.isInteger(v) || v < 1) throw new ShapeError(`layer: ${name} must be a positive integer, got ${v}`);
  if (x.length !== B * T * c.hidden_size) throw new ShapeError(`layer: hidden states must have length B*T*hidden_size = ${B}*${T}*${c.hidden_size} = ${B * T * c.hidden_size}, got ${x.length}`);
  const bad = x.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new ShapeError(`layer: hidden state at flat index ${bad} is not finite (${x[bad]})`);
}

const gatedDelta = (): BuiltinRule => getRule('gated-delta');

/** The layer over x [B, T, D] (docs/spec.md §6), from `initial` (default: empty), in the gathered form. */
export function layerForward(c: LayerConfig, w: LayerWeights, x: Float64Array, B: number, T: number, opts: LayerOptions = {}): LayerOutputs {
  const r = layerReadout(c, w, x, B, T, opts);
  return { y: layerOutput(c, w, x, r.o, B * T), ...r };
}

/** Steps 1-6 of layerForward: the router logits, the mixed memory read-out o [B, T, H, dv] and the state after. */
export function layerReadout(c: LayerConfig, w: LayerWeights, x: Float64Array, B: number, T: number, opts: LayerOptions = {}): Omit<LayerOutputs, 'y'> {
  checkLayerWeights(w, c);
  checkLayerInput(c, x, B, T);
  const d: LayerDims = layerDims(c);
  const { D, H, dk, dv, E } = d;
  const rule = gatedDelta();
  const st = opts.initial ? cloneLayerState(opts.initial) : emptyLayerState(c, B);
  if (opts.initial) checkLayerState(c, B, st);

  const logits = linear(x, B * T, w['gate.weight'], E);
  const routing = route(logits, B, T, E, c.topk);
  const o = new Float64Array(B * T * H * dv);

  for (let b = 0; b < B; b++) {
    // tokens[e] = (t, weight) routed to memory e, in time order (a stable gather)
    const tokens: { t: number; w: number }[][] = Array.from({ length: slotCount(c) }, () => []);
    for (let t = 0; t < T; t++) {
      for (let j = 0; j < c.topk; j++) {
        const bt = (b * T + t) * c.topk + j;
        tokens[routing.indices[bt]].push({ t, w: routing.weights[bt] });
      }
      if (c.shared_mem) tokens[E].push({ t, w: 1 });
    }
    for (let slot = 0; slot < tokens.length; slot++) {
      const list = tokens[slot];
      const n = list.length;
      if (n === 0 || (opts.slots && !opts.slots.includes(slot))) continue; // a memory that gets no token neither moves nor touches its caches
      const X = new Float64Array(n * D);
      list.forEach(({ t }, i) => X.set(x.subarray((b * T + t) * D, (b * T + t + 1) * D), i * D));
      const f = slotFeatures(c, w, slot, X, n, slotCaches(c, st, B, slot, b));
      for (let h = 0; h < H; h++) {
        const S = slot < E ? st.routed.subarray((((slot * B + b) * H + h) * dk) * dv, (((slot * B + b) * H + h + 1) * dk) * dv) : st.shared!.subarray(((b * H + h) * dk) * dv, ((b * H + h + 1) * dk) * dv);
        const seq = {
          n, dk, dv,
          q: headSlice(f.q, n, H, dk, h),
          inputs: { k: headSlice(f.k, n, H, dk, h), v: headSlice(f.v, n, H, dv, h), g: headSlice(f.g, n, H, 1, h), beta: headSlice(f.beta, n, H, 1, h) },
        };
        const oh = opts.chunk ? rule.chunked(seq, S, opts.chunk) : rule.recurrent(seq, S);
        list.forEach(({ t, w: wt }, i) => {
          const base = ((b * T + t) * H + h) * dv;
          for (let j = 0; j < dv; j++) o[base + j] += wt * oh[i * dv + j];
        });
      }
    }
  }
  return { logits, o, final: st };
}

/** Steps 7: gated RMSNorm with silu(x W_g), then o_proj; rows n = B*T. */
export function layerOutput(c: LayerConfig, w: LayerWeights, x: Float64Array, o: Float64Array, n: number): Float64Array {
  const { D, H, dv } = layerDims(c);
  const gate = linear(x, n, w['g_proj.weight'], H * dv);
  return linear(gatedRmsNorm(o, gate, n, H, dv, w['o_norm.weight'], c.norm_eps), n, w['o_proj.weight'], D);
}
