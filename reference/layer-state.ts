/**
 * docs/spec.md §7: the layer's inference state and decode. `step` is the token-by-token form: route the
 * token, advance the conv caches and states of the selected memories and of the shared memory
 * only, read out. `prefill` runs the gathered form (reference/layer.ts) from the current state.
 * The property suite checks that prefill + steps, or prefill in pieces, equals one pass.
 */
import { ShapeError } from './errors.js';
import { routeToken } from './router.js';
import { getRule } from './rules/index.js';
import type { Rule } from './types.js';
import { checkLayerWeights, layerDims, type LayerConfig, type LayerWeights } from '../reference/layer-config.js';
import {
  checkLayerInput, checkLayerState, cloneLayerState, emptyLayerState, layerForward, layerOutput, linear, slotCaches, slotFeatures, type LayerState,
} from './layer.js';

export class MomLayerState {
  private st: LayerState;
  private seen = 0;
  private readonly rule: Rule = getRule('gated-delta');

  /**
   * `mix: 'before'` reads each selected memory out of its weighted state (w_e S_e)^T q_e instead
   * of w_e (S_e^T q_e): the memory-by-memory mixing identity of docs/spec.md §6 (each memory has its own
   * conv'd query, so states cannot be summed before one shared read-out).
   */
  constructor(
    readonly config: LayerConfig,
    private readonly weights: LayerWeights,
    readonly B: number,
    initial?: LayerState,
    private readonly mix: 'after' | 'before' = 'after',
  ) {
    checkLayerWeights(weights, config);
    if (!Number.isInteger(B) || B < 1) throw new ShapeError(`layer state: B must be a positive integer, got ${B}`);
    this.st = initial ? cloneLayerState(initial) : emptyLayerState(config, B);
    if (initial) checkLayerState(config, B, this.st);
  }

  get tokensSeen(): number {
    return this.seen;
  }

  /** Bytes of float64 state: memories and conv caches; independent of the tokens seen. */
  get byteSize(): number {
    const s = this.st;
    return 8 * (s.routed.length + (s.shared?.length ?? 0) + s.conv.q.length + s.conv.k.length + s.conv.v.length);
  }

  snapshot(): LayerState {
    return cloneLayerState(this.st);
  }

  restore(s: LayerState): void {
    checkLayerState(this.config, this.B, s);
    this.st = cloneLayerState(s);
  }

  /** x [B, T, D] -> y [B, T, D], continuing from the current state. */
  prefill(x: Float64Array, T: number, chunk?: number): Float64Array {
    const r = layerForward(this.config, this.weights, x, this.B, T, { initial: this.st, chunk });
    this.st = r.final;
    this.seen += T;
    return r.y;
  }

  /** One token per sequence: x [B, D] -> y [B, D]. */
  step(x: Float64Array): Float64Array {
    const c = this.config;
    const { D, H, dk, dv, E } = layerDims(c);
    checkLayerInput(c, x, this.B, 1);
    const dims = { dk, dv };
    const o = new Float64Array(this.B * H * dv);
    const out = new Float64Array(dv);
    const scaled = new Float64Array(dk * dv);
    for (let b = 0; b < this.B; b++) {
      const xb = x.subarray(b * D, (b + 1) * D);
      const r = routeToken(linear(xb, 1, this.weights['gate.weight'], E), c.topk);
      const slots = r.indices.map((e, j) => ({ slot: e, w: r.weights[j] }));
      if (c.shared_mem) slots.push({ slot: E, w: 1 });
      for (const { slot, w } of slots) {
        const f = slotFeatures(c, this.weights, slot, xb, 1, slotCaches(c, this.st, this.B, slot, b));
        for (let h = 0; h < H; h++) {
          const S = slot < E ? this.st.routed.subarray(((slot * this.B + b) * H + h) * dk * dv, ((slot * this.B + b) * H + h + 1) * dk * dv) : this.st.shared!.subarray((b * H + h) * dk * dv, (b * H + h + 1) * dk * dv);
          this.rule.step(S, { k: f.k.subarray(h * dk, (h + 1) * dk), v: f.v.subarray(h * dv, (h + 1) * dv), g: f.g[h], beta: f.beta[h] }, dims);
          const q = f.q.subarray(h * dk, (h + 1) * dk);
          if (this.mix === 'before') {
            for (let i = 0; i < dk * dv; i++) scaled[i] = w * S[i];
            this.rule.read(scaled, q, dims, out);
            for (let j = 0; j < dv; j++) o[(b * H + h) * dv + j] += out[j];
          } else {
            this.rule.read(S, q, dims, out);
            for (let j = 0; j < dv; j++) o[(b * H + h) * dv + j] += w * out[j];
          }
        }
      }
    }
    this.seen += 1;
    return layerOutput(c, this.weights, x, o, this.B);
  }
}
