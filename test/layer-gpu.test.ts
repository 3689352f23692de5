import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { getGpu, type GpuContext } from '../gpu/device.js';
import { gpuLayerForward } from '../gpu/layer.js';
import { checkGpuLayer, checkGpuLayerDecode, gpuLayerCaseArb, GPU_LAYER_TOL, type GpuLayerCase } from '../properties/layer.js';
import { describeLayerCase } from '../properties/layer.js';
import { parseLayerConfig } from '../src/layer-config.js';
import { initLayerWeights } from '../src/cli/init.js';
import { ConfigError, ShapeError } from '../reference/errors.js';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await getGpu();
});

// lavapipe runs ~1 GFLOP/s on 2 shared cores: few, small cases, bounded in time.
const SMALL = { T: [1, 12], B: [1, 2], H: [1, 2], D: [1, 8], headDim: [2, 4], E: [1, 4] } as const;

async function runProp(name: string, check: (ctx: GpuContext, c: GpuLayerCase) => Promise<{ ok: boolean; errRatio: number; message?: string }>, numRuns: number) {
  let worst = 0;
  const r = await fc.check(
    fc.asyncProperty(gpuLayerCaseArb(SMALL), async (c) => {
      const out = await check(ctx, c);
      worst = Math.max(worst, out.errRatio);
      if (!out.ok) throw new Error(out.message);
    }),
    { numRuns, interruptAfterTimeLimit: 45_000 },
  );
  console.log(`${name}: ${r.numRuns} cases, worst err ratio ${worst.toExponential(2)} (tolerance ${GPU_LAYER_TOL})`);
  if (r.failed) {
    const c = r.counterexample?.[0];
    throw new Error(`${name} failed (seed ${r.seed}, path ${r.counterexamplePath}): ${(r.errorInstance as Error)?.message}\ncase: ${JSON.stringify(c && describeLayerCase(c))}`);
  }
  expect(r.numRuns).toBeGreaterThan(0);
}

describe('GPU layer (float32) against the reference layer (float64)', () => {
  it('forward: y, router logits, final states and conv caches', async () => {
    await runProp('gpu layer forward', checkGpuLayer, 14);
  });

  it('decode: prefill in pieces, then steps, with no allocation per step', async () => {
    await runProp('gpu layer decode', checkGpuLayerDecode, 6);
  });

  it('awkward fixed cases: one token, k = E, memories with no token, conv width 1, single_kv_proj', async () => {
    const cases: [Record<string, unknown>, number, number][] = [
      [{ hidden_size: 3, num_heads: 1, head_dim: 2, num_memories: 1, topk: 1, conv_size: 4 }, 1, 1],
      [{ hidden_size: 5, num_heads: 2, head_dim: 4, expand_v: 0.5, num_memories: 3, topk: 3, shared_mem: true }, 2, 17],
      [{ hidden_size: 4, num_heads: 1, head_dim: 2, num_memories: 4, topk: 1, single_kv_proj: true, shared_mem: true, conv_size: 1 }, 1, 5],
    ];
    for (const [json, B, T] of cases) {
      const config = parseLayerConfig(json);
      const x = Float64Array.from({ length: B * T * config.hidden_size }, (_, i) => Math.fround(Math.sin(1 + i * 0.7)));
      const c: GpuLayerCase = { config, B, T, weightSeed: 9, gain: 8, x, cuts: T > 3 ? [2] : [], chunk: 0, mode: 'chunk', gpuChunk: 16 };
      for (const check of [checkGpuLayer, checkGpuLayerDecode]) {
        const out = await check(ctx, c);
        expect(out.ok, `${JSON.stringify(json)} B=${B} T=${T}: ${out.message}`).toBe(true);
      }
    }
  });

  it('bad input gets typed errors', async () => {
    const config = parseLayerConfig({ hidden_size: 4, num_heads: 1, head_dim: 2, num_memories: 2, topk: 1 });
    const w = initLayerWeights(config, 1);
    await expect(gpuLayerForward(ctx, config, w, new Float64Array(7), 1, 2)).rejects.toThrow(ShapeError);
    await expect(gpuLayerForward(ctx, config, w, new Float64Array(8), 1, 2, { mode: 'chunk', chunk: 8 as never })).rejects.toThrow(/chunk size must be one of 16, 32, 64/);
    const { ['a_proj.0.weight']: _gone, ...partial } = w;
    await expect(gpuLayerForward(ctx, config, partial, new Float64Array(8), 1, 2)).rejects.toThrow(ConfigError);
  });
});
