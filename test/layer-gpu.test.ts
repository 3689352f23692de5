import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { getGpu, type GpuContext } from '../gpu/device.js';
import { gpuLayerForward } from '../gpu/layer.js';
import { outputBuffer, readback, upload } from '../gpu/buffers.js';
import { prepareMatmul } from '../gpu/kernels/matmul.js';
import { compareArrays } from '../properties/compare.js';
import { checkGpuLayer, checkGpuLayerDecode, gpuLayerCaseArb, GPU_LAYER_TOL, type GpuLayerCase } from '../properties/layer.js';
import { describeLayerCase } from '../properties/layer.js';
import { parseLayerConfig } from '../reference/layer-config.js';
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
    { numRuns },
  );
  console.log(`${name}: ${r.numRuns} cases, worst err ratio ${worst.toExponential(2)} (tolerance ${GPU_LAYER_TOL})`);
  if (r.failed) {
    const c = r.counterexample?.[0];
    throw new Error(`${name} failed (seed ${r.seed}, path ${r.counterexamplePath}): ${(r.errorInstance as Error)?.message}\ncase: ${JSON.stringify(c && describeLayerCase(c))}`);
  }
  expect(r.numRuns).toBeGreaterThan(0);
}

// Float32 dot products of up to 70 grid values against float64: measured worst err ratio 1.6e-7
// over 40 random cases; 1e-6 is 6x that, while a wrong or missing term gives >= 1e-2.
const MATMUL_TOL = 1e-6;

describe('tiled matmul', () => {
  it('Y = A W^T per batch over row ranges: sizes across tile edges, empty batches', async () => {
    const grid = (n: number) => fc.array(fc.integer({ min: -65536, max: 65536 }), { minLength: n, maxLength: n }).map((a) => Float64Array.from(a, (i) => i / 65536));
    const arb = fc
      .record({ N: fc.integer({ min: 1, max: 40 }), K: fc.integer({ min: 1, max: 70 }), sizes: fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 3 }) })
      .chain((r) => {
        const rows = r.sizes.reduce((a, b) => a + b, 0);
        return fc.record({ A: grid(rows * r.K), W: grid(r.sizes.length * r.N * r.K) }).map((d) => ({ ...r, ...d, rows }));
      });
    let worst = 0;
    await fc.assert(
      fc.asyncProperty(arb, async ({ N, K, sizes, rows, A, W }) => {
        const bounds = [0];
        for (const s of sizes) bounds.push(bounds[bounds.length - 1] + s);
        const ref = new Float64Array(rows * N);
        for (let z = 0; z < sizes.length; z++)
          for (let r = bounds[z]; r < bounds[z + 1]; r++)
            for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) ref[r * N + n] += A[r * K + k] * W[(z * N + n) * K + k];
        const bufs = [upload(ctx, 'bounds', new Uint32Array(bounds)), upload(ctx, 'A', A), upload(ctx, 'W', W)];
        const Y = outputBuffer(ctx, 'Y', rows * N);
        const p = prepareMatmul(ctx, 'matmul test', { N, K, batches: sizes.length, maxRows: Math.max(1, ...sizes), stride: 1, wBatch: N * K }, { bounds: bufs[0], A: bufs[1], W: bufs[2], Y });
        const enc = ctx.device.createCommandEncoder();
        const pass = enc.beginComputePass();
        p.encode(pass);
        pass.end();
        ctx.device.queue.submit([enc.finish()]);
        const got = await readback(ctx, Y, rows * N); // also checks the canary: no write past the rows
        [...bufs, Y, ...p.owned].forEach((b) => b.destroy());
        const c = compareArrays(ref, got);
        worst = Math.max(worst, c.errRatio);
        if (!c.pass(MATMUL_TOL)) throw new Error(`err ratio ${c.errRatio} (max abs ${c.maxAbs}) for N=${N} K=${K} sizes=${sizes}`);
      }),
      { numRuns: 30 },
    );
    console.log(`matmul: worst err ratio ${worst.toExponential(2)} (tolerance ${MATMUL_TOL})`);
  });
});

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
