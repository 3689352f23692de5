/**
 * gpu-finite (properties/gpu-finite.ts): the shipped rules' GPU kernels stay finite over long
 * sequences where the reference does, and a rule whose float32 evaluation overflows an intermediate
 * (exp(90 + g) · exp(−90 − g) is 1 in float64, inf · 0 in float32) is caught.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { getGpu, type GpuContext } from '../gpu/device.js';
import { gpuRuleFromText } from '../gpu/kernels/from-text.js';
import { ruleFromText } from '../reference/rules/from-text.js';
import { SIZES } from '../properties/arbitraries.js';
import { builtinTargets } from '../properties/index.js';
import { gpuStaysFinite } from '../properties/gpu-finite.js';
import { runProperty } from '../properties/runner.js';
import type { RuleTarget } from '../properties/types.js';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await getGpu();
});

const textTarget = (name: string, text: string): RuleTarget => ({ name: `text:${name}`, ref: ruleFromText(text, { name }), gpu: gpuRuleFromText(text, { name }) });

const OVERFLOWS = `# exp(90 + g) overflows float32; the product with exp(-90 - g) is exactly 1 in float64
state S[dk, dv]
inputs k[dk], v[dv], g
range k normalized
update S = S + exp(90 + g) * (exp(-90 - g) * k) * v'
output o = S' * q
`;

describe('gpu-finite', () => {
  it('holds for the built-in kernels (token by token and chunked) and the shipped rule files', async () => {
    // the built-ins' own rule files compile to the same kernels as other text rules: the others suffice
    const builtinFiles = new Set(['linear.rule', 'decay.rule', 'gla.rule', 'delta.rule', 'gated-delta.rule']);
    const files = readdirSync('rules').filter((f) => f.endsWith('.rule') && !builtinFiles.has(f));
    const targets = [...builtinTargets(), ...files.map((f) => textTarget(f, readFileSync(`rules/${f}`, 'utf8')))];
    for (const t of targets) {
      const rep = await runProperty(gpuStaysFinite, [t], { ctx }, { sizes: SIZES.small, numRuns: 1, seed: 17 });
      expect(rep.failure?.message, t.name).toBeUndefined();
      expect(rep.cases, t.name).toBe(1);
    }
  });

  it('fails a kernel that overflows an intermediate the reference does not', async () => {
    const rep = await runProperty(gpuStaysFinite, [textTarget('overflows', OVERFLOWS)], { ctx }, { sizes: SIZES.small, numRuns: 2, seed: 3 });
    expect(rep.passed).toBe(false);
    expect(rep.failure?.message).toMatch(/recurrent: o\[\d+\] is (NaN|Infinity|-Infinity) while the float64 reference stays below/);
  });
});
