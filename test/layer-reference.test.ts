import { describe, expect, it } from 'vitest';
import { test } from '@fast-check/vitest';
import { checkLayerDecode, checkLayerMixing, layerCaseArb, layerCaseWeights, LAYER_F64_TOL, type LayerCase } from '../properties/layer.js';
import { compareOutcome } from '../properties/compare.js';
import { emptyLayerState, gates, gatedRmsNorm, l2normHeads, layerForward, layerOutput, shortConv, silu, slotFeatures } from '../reference/layer.js';
import { MomLayerState } from '../reference/layer-state.js';
import { momForward } from '../reference/mom.js';
import { getRule } from '../reference/rules/index.js';
import type { CoreConfig, MemoryInputs } from '../reference/types.js';
import { layerDims, parseLayerConfig } from '../reference/layer-config.js';
import { initLayerWeights } from '../src/cli/init.js';
import { ConfigError, ShapeError } from '../reference/errors.js';

const PARAMS = { numRuns: 120 };

function report(out: { ok: boolean; message?: string }, c: LayerCase) {
  if (!out.ok) throw new Error(`${out.message}\ncase: ${JSON.stringify({ ...c, x: undefined })}`);
}

/**
 * An independent oracle: with conv_size = 1 the short conv has no history, so every memory sees
 * the same query and the layer is the core MoM form (reference/mom.ts, direct token-by-token,
 * docs/spec.md §4) on per-token projected inputs, followed by the output stage.
 */
function layerViaCore(c: LayerCase): Float64Array {
  const cfg = c.config;
  const { H, dk, dv, E, D } = layerDims(cfg);
  const w = layerCaseWeights(c);
  const n = c.B * c.T;
  const none = { q: new Float64Array(0), k: new Float64Array(0), v: new Float64Array(0) };
  const mem = (slot: number): { q: Float64Array; m: MemoryInputs } => {
    const f = slotFeatures(cfg, w, slot, c.x, n, none);
    return { q: f.q, m: { k: f.k, v: f.v, g: f.g, beta: f.beta } };
  };
  const routed = Array.from({ length: E }, (_, e) => mem(e));
  const logits = new Float64Array(n * E);
  for (let r = 0; r < n; r++) for (let e = 0; e < E; e++) for (let i = 0; i < D; i++) logits[r * E + e] += c.x[r * D + i] * w['gate.weight'][e * D + i];
  const core: CoreConfig = { B: c.B, T: c.T, H, E, topk: cfg.topk, dk, dv, shared: cfg.shared_mem, scale: 1 };
  const out = momForward(getRule('gated-delta'), core, { q: routed[0].q, logits, memories: routed.map((r) => r.m), shared: cfg.shared_mem ? mem(E).m : null });
  return layerOutput(cfg, w, c.x, out.o, n);
}

describe('layer building blocks, by hand (docs/spec.md §6)', () => {
  it('short conv: causal, w[.., W-1] on the current input, zero history, cache continues', () => {
    const w = new Float64Array([0.5, -1, 2]); // one channel, W = 3
    const cache = new Float64Array(2);
    const y = shortConv(new Float64Array([1, 2, 3]), 3, 1, w, 3, cache);
    expect(Array.from(y)).toEqual([silu(2), silu(-1 + 4), silu(0.5 - 2 + 6)]);
    expect(Array.from(cache)).toEqual([2, 3]);
    expect(Array.from(shortConv(new Float64Array([4]), 1, 1, w, 3, cache))).toEqual([silu(1 - 3 + 8)]);
    expect(Array.from(cache)).toEqual([3, 4]);
  });

  it('l2norm with 1e-6 inside the root, gates, gated RMSNorm', () => {
    const x = new Float64Array([3, 4, 0, 2]);
    l2normHeads(x, 1, 2, 2, 0.5);
    expect(Array.from(x)).toEqual([1.5 / Math.sqrt(25 + 1e-6), 2 / Math.sqrt(25 + 1e-6), 0, 1 / Math.sqrt(4 + 1e-6)]);
    // softplus(0 + log(e - 1)) = 1, so g = -exp(A_log) = -2; beta = sigmoid(0) = 1/2
    const { beta, g } = gates(new Float64Array([0]), new Float64Array([0]), 1, 1, new Float64Array([Math.log(2)]), new Float64Array([Math.log(Math.E - 1)]));
    expect(beta[0]).toBe(0.5);
    expect(g[0]).toBeCloseTo(-2, 14);
    const y = gatedRmsNorm(new Float64Array([3, 4]), new Float64Array([0, 1]), 1, 1, 2, new Float64Array([1, 0.5]), 1e-5);
    expect(y[0]).toBe(0); // silu(0) = 0
    expect(y[1]).toBeCloseTo((4 / Math.sqrt(12.5 + 1e-5)) * 0.5 * silu(1), 14);
  });
});

describe('reference layer (docs/spec.md §6, 7)', () => {
  test.prop([layerCaseArb().map((c) => ({ ...c, config: { ...c.config, conv_size: 1 } }))], PARAMS)('with conv width 1 the layer equals the core form on projected inputs', (c) => {
    const got = layerForward(c.config, layerCaseWeights(c), c.x, c.B, c.T, { chunk: c.chunk || undefined });
    report(compareOutcome([{ what: 'y', ref: layerViaCore(c), got: got.y }], LAYER_F64_TOL, { atol: 0 }), c);
  });

  test.prop([layerCaseArb()], PARAMS)('prefill + steps and prefill in pieces equal one pass; steps touch only selected memories', (c) => {
    report(checkLayerDecode(c), c);
  });

  test.prop([layerCaseArb()], PARAMS)('mixing before the read-out, memory by memory, equals mixing after', (c) => {
    report(checkLayerMixing(c), c);
  });

  it('awkward fixed cases: a single token, k = E, a memory with no token', () => {
    const cfgs = [
      parseLayerConfig({ hidden_size: 3, num_heads: 1, head_dim: 2, num_memories: 1, topk: 1, conv_size: 4 }),
      parseLayerConfig({ hidden_size: 5, num_heads: 2, head_dim: 4, expand_v: 0.5, num_memories: 3, topk: 3, shared_mem: true }),
      parseLayerConfig({ hidden_size: 4, num_heads: 1, head_dim: 2, num_memories: 4, topk: 1, single_kv_proj: true, shared_mem: true }),
    ];
    for (const config of cfgs) {
      for (const T of [1, 2, 5]) {
        const x = Float64Array.from({ length: 2 * T * config.hidden_size }, (_, i) => Math.sin(1 + i * 0.7));
        const c: LayerCase = { config, B: 2, T, weightSeed: 5, gain: 8, x, cuts: T > 2 ? [1, 3] : [], chunk: 2 };
        report(checkLayerDecode(c), c);
        report(checkLayerMixing(c), c);
      }
    }
  });

  it('the state has a fixed size and a memory with no token keeps a zero state', () => {
    const config = parseLayerConfig({ hidden_size: 4, num_heads: 2, head_dim: 2, num_memories: 4, topk: 1, shared_mem: true, conv_size: 3 });
    const w = initLayerWeights(config, 1);
    // route every token to memory 2: its gate row dominates for x = (1, 1, 1, 1)
    w['gate.weight'].fill(0);
    w['gate.weight'].fill(1, 8, 12);
    const x = new Float64Array(6 * 4).fill(1);
    const r = layerForward(config, w, x, 1, 6);
    const per = 2 * 2 * 4; // H dk dv (expand_v defaults to 2)
    for (const e of [0, 1, 3]) expect(Array.from(r.final.routed.subarray(e * per, (e + 1) * per)).every((v) => v === 0)).toBe(true);
    expect(Array.from(r.final.routed.subarray(2 * per, 3 * per)).some((v) => v !== 0)).toBe(true);
    const st = new MomLayerState(config, w, 1);
    const size = st.byteSize;
    st.prefill(x, 6);
    st.step(x.subarray(0, 4));
    expect(st.byteSize).toBe(size);
    // E routed + 1 shared states of H*dk*dv, and (E+1) slots of conv caches (H*dk + H*dk + H*dv) * (W-1)
    expect(size).toBe(8 * (5 * per + 5 * (4 + 4 + 8) * 2));
  });

  it('bad input gets typed errors that name the problem', () => {
    const config = parseLayerConfig({ hidden_size: 4, num_heads: 1, head_dim: 2, num_memories: 2, topk: 1 });
    const w = initLayerWeights(config, 1);
    expect(() => layerForward(config, w, new Float64Array(7), 1, 2)).toThrow(ShapeError);
    expect(() => layerForward(config, w, new Float64Array(7), 1, 2)).toThrow(/B\*T\*hidden_size = 1\*2\*4 = 8, got 7/);
    expect(() => layerForward(config, w, new Float64Array([1, 2, NaN, 4]), 1, 1)).toThrow(/index 2 is not finite/);
    const { ['v_proj.1.weight']: _gone, ...partial } = w;
    expect(() => layerForward(config, partial, new Float64Array(4), 1, 1)).toThrow(ConfigError);
    expect(() => layerForward(config, partial, new Float64Array(4), 1, 1)).toThrow(/missing 'v_proj.1.weight'/);
    const st = emptyLayerState(config, 2);
    expect(() => new MomLayerState(config, w, 1, st)).toThrow(/layer state 'routed'/);
    expect(() => new MomLayerState(config, w, 0)).toThrow(/B must be a positive integer/);
  });
});

