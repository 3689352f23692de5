/**
 * The GPU properties of issue 3, on whatever adapter is present (lavapipe in CI): at least 100
 * cases each, every built-in rule drawn inside the cases, small shapes. Plus proof that the
 * properties can fail: a GPU rule fed the wrong buffers, and one writing past its output.
 *
 * Replay a failure: MOMLAB_SEED=S MOMLAB_PATH=P npx vitest run test/properties-gpu.test.ts -t '<property>'
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { getGpu, type GpuContext } from '../gpu/device.js';
import { getGpuRule } from '../gpu/kernels/index.js';
import type { GpuRule } from '../gpu/kernels/types.js';
import { BUILTIN_RULES, RULE_NAMES } from '../reference/rules/index.js';
import { SIZES } from '../properties/arbitraries.js';
import { assertProperty } from '../properties/assert.js';
import { GPU_PROPERTIES } from '../properties/gpu.js';
import { gpuEqualsReference } from '../properties/gpu-vs-reference.js';
import { runProperty } from '../properties/runner.js';
import type { RuleTarget } from '../properties/types.js';

const FILE = 'test/properties-gpu.test.ts';
const RUNS = 100;
const targets: RuleTarget[] = RULE_NAMES.map((name) => ({ name, ref: BUILTIN_RULES[name], chunked: BUILTIN_RULES[name], gpu: getGpuRule(name) }));

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await getGpu();
});

describe('GPU properties (issue 3)', () => {
  for (const prop of GPU_PROPERTIES) {
    it(prop.id, async () => {
      const t0 = Date.now();
      // The time bound is a safety net against a hung driver, far above the ~2-130 s a property
      // takes on lavapipe with a warm Mesa shader cache; with a cold one every new pipeline is
      // compiled by LLVM (7-11 s for a chunked prepare kernel on 2 cores), and properties took
      // 130-203 s on a loaded machine (2026-11-29, MESA_SHADER_CACHE_DISABLE=true), so 600 s.
      // assertProperty fails if it cut the run short of RUNS cases.
      const rep = await assertProperty(prop, targets, { ctx }, { numRuns: RUNS, file: FILE, timeLimitMs: 600_000 });
      expect(rep.cases).toBeGreaterThanOrEqual(RUNS);
      if (prop.perRule) for (const s of rep.perRule) expect(s.cases, `cases for ${s.rule}`).toBeGreaterThan(0);
      console.log(`${prop.id}: ${rep.cases} cases in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${rep.perRule.map((s) => `${s.rule} ${s.cases} worst ${s.worstErrRatio.toExponential(2)}`).join(', ')}`);
    });
  }
});

describe('the GPU properties can fail', () => {
  const real = getGpuRule('linear');
  const target = (gpu: GpuRule): RuleTarget => ({ name: 'linear', ref: BUILTIN_RULES.linear, chunked: BUILTIN_RULES.linear, gpu });

  it('catches a kernel fed the wrong buffers (q and k swapped), with a shrunk case', async () => {
    // q and k are both [P, H, dk], so the swap is a valid dispatch that computes the wrong thing.
    const swapped: GpuRule = { ...real, encode: (c, enc, dims, b, o) => real.encode(c, enc, dims, { ...b, q: b.inputs[0], inputs: [b.q, ...b.inputs.slice(1)] }, o) };
    const rep = await runProperty(gpuEqualsReference, [target(swapped)], { ctx }, { sizes: SIZES.small, numRuns: 50, seed: 7, timeLimitMs: 60_000 });
    expect(rep.passed).toBe(false);
    expect(rep.failure!.message).toMatch(/err ratio .* > /);
    expect(rep.failure!.replay).toContain(`--seed 7 --path ${rep.failure!.path}`);
    const shrunk = rep.failure!.shrunk as { cfg: { T: number; B: number; H: number } };
    // Shrinking reaches a tiny case: one sequence, one head, a few tokens.
    expect(shrunk.cfg.B).toBe(1);
    expect(shrunk.cfg.H).toBe(1);
  });

  it('catches a write past the end of a kernel output through its canary', async () => {
    // After the real kernel, one extra word lands just past the rule's gathered output o.
    const overrun: GpuRule = {
      ...real,
      encode(c, enc, dims, b, o) {
        real.encode(c, enc, dims, b, o);
        enc.copyBufferToBuffer(b.cu, 0, b.o, dims.positions * dims.H * dims.dv * 4, 4);
      },
    };
    const rep = await runProperty(gpuEqualsReference, [target(overrun)], { ctx }, { sizes: SIZES.small, numRuns: 5, seed: 3, timeLimitMs: 60_000 });
    expect(rep.passed).toBe(false);
    expect(rep.failure!.message).toMatch(/GpuError: canary overwritten after (buffer 'gathered o'|the linear .* kernel, buffer 'o')/);
  });
});
