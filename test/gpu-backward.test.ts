/**
 * The GPU backward generated from a rule's text (issue 17 §5, gpu/kernels/backward.ts) equals the
 * float64 derived backward over varlen segments (empty ones included), for every shipped rule
 * file — the five built-ins through their rules/*.rule texts — at two awkward size sets; and the
 * property fails on a kernel generated from a wrong rule.
 *
 * Replay a property failure: MOMLAB_SEED=S MOMLAB_PATH=P npx vitest run test/gpu-backward.test.ts -t '<property>'
 */
import { readdirSync, readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { getGpu, type GpuContext } from '../gpu/device.js';
import { gpuBackwardFromChecked, backwardWgsl } from '../gpu/kernels/backward.js';
import { ruleFromText } from '../reference/rules/from-text.js';
import { RULE_NAMES } from '../reference/rules/index.js';
import { SIZES, type SizeRanges } from '../properties/arbitraries.js';
import { assertProperty } from '../properties/assert.js';
import { gpuGradientEqualsReference, gpuGradientProperty } from '../properties/gradients.js';
import { runProperty } from '../properties/runner.js';
import type { RuleTarget } from '../properties/types.js';

const FILE = 'test/gpu-backward.test.ts';
let ctx: GpuContext;
beforeAll(async () => {
  ctx = await getGpu();
});

const load = (name: string) => readFileSync(`rules/${name}.rule`, 'utf8');
const FILES = readdirSync('rules')
  .filter((f) => f.endsWith('.rule'))
  .map((f) => f.replace(/\.rule$/, ''));
const targets: RuleTarget[] = FILES.map((name) => ({ name, ref: ruleFromText(load(name), { name, file: `rules/${name}.rule` }) }));
// One (H, dk, dv) per run so that lavapipe compiles one pipeline per rule: dk = 1 and a wide dv, H = 2 with
// dk > dv, and a state of 144 entries (more than the 128 threads: the element loops wrap; fewer,
// shorter cases, the slowest on lavapipe).
const SIZE_SETS: { sizes: SizeRanges; perRule: number }[] = [
  { sizes: { ...SIZES.small, T: [0, 9], H: [1, 1], dk: [1], dv: [7] }, perRule: 8 },
  { sizes: { ...SIZES.small, T: [0, 13], H: [2, 2], dk: [5], dv: [3] }, perRule: 8 },
  { sizes: { ...SIZES.small, T: [0, 16], H: [2, 2], dk: [9], dv: [16] }, perRule: 3 },
];

describe('GPU backward (issue 17 §5)', () => {
  it('covers every shipped rule file, the five built-ins included', () => {
    expect(FILES.length).toBeGreaterThanOrEqual(9);
    for (const n of RULE_NAMES) expect(FILES).toContain(n);
  });

  for (const [n, { sizes, perRule }] of SIZE_SETS.entries())
    it(`${gpuGradientEqualsReference.id}, sizes ${n + 1} (H ${sizes.H[0]}, dk ${sizes.dk[0]}, dv ${sizes.dv[0]})`, async () => {
      // Rule by rule: drawn inside the case, a rule could get no case at all.
      for (const t of targets) {
        const rep = await assertProperty(gpuGradientEqualsReference, [t], { ctx }, { sizes, numRuns: perRule, file: FILE });
        expect(rep.perRule.map((s) => [s.rule, s.cases])).toEqual([[t.name, perRule]]);
      }
    });

  it('fails on a kernel generated from a wrong rule (rwkv7 with 2 k vᵀ)', async () => {
    const wrong = ruleFromText(load('rwkv7').replace("+ k * v'", "+ 2 * k * v'"), { name: 'rwkv7' });
    const prop = gpuGradientProperty(() => gpuBackwardFromChecked(wrong.checked));
    const rep = await runProperty(prop, targets.filter((t) => t.name === 'rwkv7'), { ctx }, { sizes: SIZE_SETS[1].sizes, numRuns: 5 });
    expect(rep.passed).toBe(false);
    expect(rep.failure?.message).toMatch(/dk|dinitial|dq|dv/);
  });

  it('the generated WGSL holds only momlab identifiers and cites rule lines by number', () => {
    const rule = targets.find((t) => t.name === 'titans')!.ref as ReturnType<typeof ruleFromText>;
    const code = backwardWgsl(rule.checked, { H: 2, dk: 4, dv: 3 });
    for (const d of rule.inputs) expect(code).not.toMatch(new RegExp(`\\b${d.name}\\b`));
    expect(code).toMatch(/\/\/ line \d+/);
  });
});
