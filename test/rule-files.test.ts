/**
 * The shipped rule files (rules/*.rule): the five built-ins written as text agree with the
 * hand-written rules on both sides (reference getRule, GPU getGpuRule), and every rule's GPU
 * kernel compiled from its text agrees with its reference compile.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { getGpu, type GpuContext } from '../gpu/device.js';
import { gpuRuleFromText } from '../gpu/kernels/from-text.js';
import { getGpuRule } from '../gpu/kernels/index.js';
import { gpuMomForward } from '../gpu/mom.js';
import { ruleFromText } from '../reference/rules/from-text.js';
import { getRule, RULE_NAMES } from '../reference/rules/index.js';
import { momForward } from '../reference/mom.js';
import { coreCaseArb, SIZES } from '../properties/arbitraries.js';
import { compareAll, describeFailures } from '../properties/compare.js';
import { TEXT_GPU_TOL } from '../properties/rule-file.js';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await getGpu();
});

const load = (name: string) => readFileSync(`rules/${name}.rule`, 'utf8');
const FILES = readdirSync('rules').map((f) => f.replace(/\.rule$/, ''));
// Small shapes for lavapipe: a few cases per rule keep this file around half a minute.
const SMALL = { ...SIZES.small, T: [1, 20] as const };

describe('rule files', () => {
  it('ship the five built-ins and at least three others, each with a comment', () => {
    for (const n of RULE_NAMES) expect(FILES).toContain(n);
    expect(FILES.filter((f) => !(RULE_NAMES as readonly string[]).includes(f)).length).toBeGreaterThanOrEqual(4);
    for (const f of FILES) expect(load(f)).toMatch(/^#/);
  });

  for (const name of RULE_NAMES) {
    it(`${name}.rule declares the built-in's inputs, in order, and matches its reference`, () => {
      const text = ruleFromText(load(name), { file: `rules/${name}.rule` });
      const builtin = getRule(name);
      expect(text.inputs).toEqual(builtin.inputs);
      fc.assert(
        fc.property(coreCaseArb(builtin.inputs, SIZES.small), (c) => {
          const a = momForward(builtin, c.cfg, c.x, { initial: c.initial });
          const b = momForward(text, c.cfg, c.x, { initial: c.initial });
          const cmp = compareAll([
            { what: 'o', ref: a.o, got: b.o },
            { what: 'final.routed', ref: a.final.routed, got: b.final.routed },
          ]);
          // Float64 both: the same algebra, the built-ins fuse passes (gated-delta folds the decay
          // into Sᵀk): measured worst ratio 3e-16. 1e-12 allows reassociation only.
          expect(cmp.items.every((i) => i.pass(1e-12, 0)), describeFailures(cmp.items, 1e-12, 0)).toBe(true);
        }),
        { numRuns: 40 },
      );
    });
  }

  for (const name of RULE_NAMES) {
    it(`${name}.rule compiled to WGSL matches the hand-written GPU kernel`, async () => {
      const text = gpuRuleFromText(load(name), { file: `rules/${name}.rule` });
      const builtin = getGpuRule(name);
      await fc.assert(
        fc.asyncProperty(coreCaseArb(builtin.inputs, SMALL), async (c) => {
          const a = await gpuMomForward(ctx, builtin, c.cfg, c.x, { mode: 'recurrent', initial: c.initial });
          const b = await gpuMomForward(ctx, text, c.cfg, c.x, { mode: 'recurrent', initial: c.initial });
          const cmp = compareAll([
            { what: 'o', ref: a.o, got: b.o },
            { what: 'final.routed', ref: a.final.routed, got: b.final.routed },
          ]);
          // Both float32, different summation orders; measured worst ratio 1.1e-7 (delta) over
          // 12 cases per rule, each side within 2.2e-7 of float64: the text-rule tolerance
          // (TEXT_GPU_TOL, measured against float64) bounds their difference too.
          expect(cmp.items.every((i) => i.pass(TEXT_GPU_TOL)), describeFailures(cmp.items, TEXT_GPU_TOL)).toBe(true);
        }),
        { numRuns: 3 },
      );
    });
  }

  for (const name of FILES.filter((f) => !(RULE_NAMES as readonly string[]).includes(f))) {
    it(`${name}.rule: the GPU compile matches the reference compile`, async () => {
      const ref = ruleFromText(load(name), { file: `rules/${name}.rule` });
      const gpu = gpuRuleFromText(load(name), { file: `rules/${name}.rule` });
      await fc.assert(
        fc.asyncProperty(coreCaseArb(ref.inputs, SMALL), async (c) => {
          const a = momForward(ref, c.cfg, c.x, { initial: c.initial });
          const b = await gpuMomForward(ctx, gpu, c.cfg, c.x, { mode: 'recurrent', initial: c.initial });
          const cmp = compareAll([
            { what: 'o', ref: a.o, got: b.o },
            { what: 'final.routed', ref: a.final.routed, got: b.final.routed },
            { what: 'final.shared', ref: a.final.shared ?? [], got: b.final.shared ?? [] },
          ]);
          // TEXT_GPU_TOL: float32 vs float64, measured worst 2.2e-7 (see properties/rule-file.ts).
          expect(cmp.items.every((i) => i.pass(TEXT_GPU_TOL)), describeFailures(cmp.items, TEXT_GPU_TOL)).toBe(true);
        }),
        { numRuns: 3 },
      );
    });
  }

  it('a rule with eye, sum, max and min: the GPU compile matches the reference compile', async () => {
    const text = `state S[dk, dv]
inputs k[dk], v[dv], beta, g
range k normalized
range beta in (0, 1)
range g <= 0
let a = max(g, -0.5) + min(sum(k .^ 2), 2)
update S = (eye(dk) - beta * k * k') * S * eye(dv) + beta * k * v' - min(g, sum(S) / (dk * dv)) * 0.01 * k * v'
update S = a * S
output o = S' * q / 2 + max(sum(q), 1) * S' * q`;
    const ref = ruleFromText(text);
    const gpu = gpuRuleFromText(text);
    await fc.assert(
      fc.asyncProperty(coreCaseArb(ref.inputs, SMALL), async (c) => {
        const a = momForward(ref, c.cfg, c.x, { initial: c.initial });
        const b = await gpuMomForward(ctx, gpu, c.cfg, c.x, { mode: 'recurrent', initial: c.initial });
        const cmp = compareAll([
          { what: 'o', ref: a.o, got: b.o },
          { what: 'final.routed', ref: a.final.routed, got: b.final.routed },
        ]);
        expect(cmp.items.every((i) => i.pass(TEXT_GPU_TOL)), describeFailures(cmp.items, TEXT_GPU_TOL)).toBe(true);
      }),
      { numRuns: 3 },
    );
  });

  it('a kernel that fails to compile reports the compiler message and the rule line it came from', async () => {
    // Fault injection: one statement the WGSL compiler refuses, after the update step (line 6).
    const gpu = gpuRuleFromText(load('delta'), { file: 'rules/delta.rule', name: 'broken-delta', tamper: (w) => w.replace('storageBarrier();', 'storageBarrier(); let broken: u32 = 1.5;') });
    const [c] = fc.sample(coreCaseArb(gpu.inputs, SMALL), { numRuns: 1, seed: Date.now() % 2 ** 31 });
    const run = gpuMomForward(ctx, gpu, c.cfg, c.x, { mode: 'recurrent', initial: c.initial });
    await expect(run).rejects.toThrow(/the WGSL of 'broken-delta:text-recurrent' does not compile:\n\d+:\d+: .*u32.*\nrules\/delta\.rule:6:1: the kernel code that fails comes from this rule line\n6 \| update S = S \+ beta/);
  });
});

describe('the momlab command', () => {
  it('prints no Dawn warning lines on a GPU run, and still passes other stderr through', () => {
    const run = (args: string[]) => spawnSync(process.execPath, ['bin/momlab.js', ...args], { encoding: 'utf8' });
    const ok = run(['fuzz', 'rules/linear.rule', '--runs', '1', '--property', 'gpu-equals-reference']);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/gpu-equals-reference\s+pass\s+1 /);
    expect(`${ok.stdout}${ok.stderr}`).not.toMatch(/Warning:/);
    const bad = run(['fuzz', 'rules/does-not-exist.rule']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^momlab fuzz: cannot read rule file 'rules\/does-not-exist\.rule'/);
  });
});
