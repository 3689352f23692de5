/**
 * Every size class reaches every kernel path (issue 16 §7): dims that are not a multiple of 4 (the
 * chunked scan's scalar key path and the tail writes) and, rarely, dv above 64 (a second column
 * block of the output kernel). Shown with faults seeded into the WGSL of those paths through a
 * test-only wrapper of the context's pipeline compile: each survives the old small class (dk, dv
 * from {4, 8}) and is caught by `small` within the same number of cases.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { getGpu, type GpuContext } from '../gpu/device.js';
import { scanKernelWgsl } from '../gpu/kernels/chunk-scan.js';
import { coreConfigArb, SIZES, type SizeRanges } from '../properties/arbitraries.js';
import { gpuChunkedEqualsRecurrent } from '../properties/chunked-vs-recurrent.js';
import { gpuEqualsReference } from '../properties/gpu-vs-reference.js';
import { runProperty } from '../properties/runner.js';
import { builtinTarget } from '../src/rules.js';

/** The small class as it was before: dk, dv from {4, 8} only. */
const OLD_SMALL: SizeRanges = { ...SIZES.small, dk: [4, 8], dv: [4, 8], wide: [] };

/** `ctx` whose pipelines for labels ending in `label` are compiled from `fault(code)`; `hits` counts the faulty compiles asked for. */
function faulty(ctx: GpuContext, label: string, fault: (code: string) => string) {
  const hits = { n: 0 };
  const c: GpuContext = Object.create(ctx);
  c.pipeline = (l, code, ...rest) => {
    const changed = l.endsWith(label) ? fault(code) : code;
    if (changed !== code) hits.n++;
    return ctx.pipeline(l, changed, ...rest);
  };
  return { ctx: c, hits };
}

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await getGpu();
});

describe('size classes', () => {
  it('every class draws dk and dv that are not a multiple of 4, and dv above 64 about once in 25 cases', () => {
    for (const [name, s] of Object.entries(SIZES)) {
      const cfgs = fc.sample(coreConfigArb(s), { numRuns: 2000, seed: 1 });
      const share = (f: (c: (typeof cfgs)[number]) => boolean) => cfgs.filter(f).length / cfgs.length;
      expect(share((c) => c.dk % 4 !== 0), `${name}: dk % 4 != 0`).toBeGreaterThan(0.2);
      expect(share((c) => c.dv % 4 !== 0), `${name}: dv % 4 != 0`).toBeGreaterThan(0.2);
      expect(share((c) => c.dk % 4 === 0), `${name}: dk % 4 == 0`).toBeGreaterThan(0.2);
      const wide = share((c) => c.dv > 64);
      expect(wide, `${name}: dv > 64`).toBeGreaterThan(0.02);
      expect(wide, `${name}: dv > 64`).toBeLessThan(0.07);
    }
    expect(fc.sample(coreConfigArb(OLD_SMALL), { numRuns: 500, seed: 1 }).every((c) => c.dk % 4 === 0 && c.dv <= 8)).toBe(true);
  });

  it('a fault in the scan for dk not a multiple of 4 survives the old small class and is caught by small', async () => {
    // the scan's scalar key load drops the last key row
    const drop = (code: string) => code.replace('min(r, DK - 1u)], r < DK); }', 'min(r, DK - 1u)], r + 1u < DK); }');
    const form = { decay: 'none', delta: false } as const;
    const scan = (dk: number) => scanKernelWgsl(form, dk, 32, false, true, false);
    // that code exists only when dk is not a multiple of 4
    expect(drop(scan(4))).toBe(scan(4));
    expect(drop(scan(8))).toBe(scan(8));
    expect(drop(scan(3))).not.toBe(scan(3));
    const t = builtinTarget('linear');
    const run = (sizes: SizeRanges) => {
      const f = faulty(ctx, ':chunk-scan', drop);
      return runProperty(gpuEqualsReference, [t], { ctx: f.ctx }, { sizes, numRuns: 40, seed: 3 }).then((rep) => ({ rep, hits: f.hits.n }));
    };
    const old = await run(OLD_SMALL);
    expect(old.rep.cases).toBe(40);
    expect(old.rep.passed, old.rep.failure?.message).toBe(true);
    expect(old.hits).toBe(0);
    const now = await run(SIZES.small);
    expect(now.hits).toBeGreaterThan(0);
    expect(now.rep.passed).toBe(false);
    expect(now.rep.failure!.message).toMatch(/^chunk\d+: .*err ratio/);
    expect((now.rep.failure!.shrunk as { cfg: { dk: number } }).cfg.dk % 4).not.toBe(0);
  });

  it('a fault in the output kernel for a second column block (dv > 64) survives the old small class and is caught by small', async () => {
    // the chunked output kernel writes the first block of 64 columns only
    const firstBlockOnly = (code: string) => code.replaceAll('if (c < DV) { o_out[', 'if (c < DV && cb == 0u) { o_out[');
    const t = builtinTarget('decay');
    const run = (sizes: SizeRanges) => {
      const f = faulty(ctx, ':chunk-output', firstBlockOnly);
      return runProperty(gpuChunkedEqualsRecurrent, [t], { ctx: f.ctx }, { sizes, numRuns: 100, seed: 4 }).then((rep) => ({ rep, hits: f.hits.n }));
    };
    const old = await run(OLD_SMALL);
    expect(old.rep.cases).toBe(100);
    expect(old.hits).toBeGreaterThan(0); // the faulty kernel ran, but never with a second block
    expect(old.rep.passed, old.rep.failure?.message).toBe(true);
    const now = await run(SIZES.small);
    expect(now.rep.passed).toBe(false);
    expect(now.rep.failure!.message).toMatch(/o: err ratio/);
    expect((now.rep.failure!.shrunk as { cfg: { dv: number } }).cfg.dv).toBeGreaterThan(64);
  });
});
