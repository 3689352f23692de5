/**
 * The chunkwise form of docs/spec.md §5 for the built-in rules over the varlen contract of
 * gpu/kernels/types.ts (reference/rules/chunk.ts on the GPU): `encode` for mode 'chunk' records
 * one dispatch per phase, each over all segments at once:
 *   prepare  per (chunk, head): G, Aqk and for delta rules A = (I + L)^{-1}   (chunk-prepare.ts)
 *   wu       delta rules, per (chunk, head, 64 columns): W and U            (chunk-wu.ts)
 *   scan     per (segment, head, column block), sequential over chunks: V', h (chunk-scan.ts)
 *   output   per (chunk, head, 64 columns): O = (Q ⊙ e^G) h_c + Aqk V'      (chunk-output.ts)
 * (without `output` when the chunk-start states exceed one storage binding: the scan then reads
 * out itself). Scratch between them is cached per device (chunk-common.ts), so repeated calls with
 * the same or fewer positions allocate nothing.
 */
import { GpuError } from '../../reference/errors.js';
import { gridFor } from '../grid.js';
import type { GpuContext } from '../device.js';
import { cachedScratch, cachedUniform, checkRuleCall, checkStorageBindings, checkWorkgroupBytes, encodePass, gridDim } from './kernel-util.js';
import type { ChunkBuffers, ChunkRuleSpec } from './chunk-common.js';
import { outputBindings, outputKernelWgsl } from './chunk-output.js';
import { prepareBindings, prepareKernelWgsl, prepareLayout } from './chunk-prepare.js';
import { defaultScanColumns, LONG_CHAINS, scanBindings, scanKernelWgsl, scanLayout } from './chunk-scan.js';
import { wuBindings, wuKernelWgsl } from './chunk-wu.js';
import type { ChunkSize, RuleBuffers, RuleDims } from './types.js';

/** Which dispatches to record: all (a forward), or one of them (the benchmark times each). */
export type ChunkPasses = 'all' | 'prepare' | 'wu' | 'scan' | 'output';

/**
 * The scan's layout, fixed instead of chosen per shape (tests and the benchmark reach every
 * layout the defaults pick at some shape).
 */
export interface ChunkOptions {
  /** the scan's workgroup order when the dispatch has shared segments (default 'shared-first' below LONG_CHAINS tokens per segment; scanKernelWgsl's `ordered`) */
  scanOrder?: 'shared-first' | 'segment';
  /** the most state columns per scan workgroup (a multiple of 4; default defaultScanColumns) */
  scanColumns?: number;
}

/** `encode` for mode 'chunk' (see the header). */
export function makeChunkEncoder(spec: ChunkRuleSpec, options: ChunkOptions = {}) {
  const fixedColumns = options.scanColumns;
  if (fixedColumns !== undefined && (!Number.isInteger(fixedColumns / 4) || fixedColumns < 4)) {
    throw new GpuError(`rule '${spec.name}': scanColumns must be a positive multiple of 4, got ${fixedColumns}`);
  }
  const { form } = spec;
  const index = (name: string) => {
    const i = spec.inputs.findIndex((d) => d.name === name);
    if (i < 0) throw new GpuError(`rule '${spec.name}': the chunked kernels need an input named '${name}'`);
    return i;
  };
  const ik = index('k');
  const iv = index('v');
  const ig = form.decay !== 'none' ? index('g') : -1;
  const ib = form.delta ? index('beta') : -1;
  const texts = new Map<string, { prepare: string; wu: string; scan: string; output: string }>();

  return (ctx: GpuContext, enc: GPUCommandEncoder, dims: RuleDims, buffers: RuleBuffers, C: ChunkSize, passes: ChunkPasses = 'all'): void => {
    checkRuleCall(spec.name, spec.inputs, dims, buffers);
    const { segments: S, positions: P, H, dk, dv } = dims;
    const what = `rule '${spec.name}' (chunk ${C}, dk=${dk}, dv=${dv})`;
    const limit = ctx.limits.maxComputeWorkgroupStorageSize;
    const scanColumns = fixedColumns ?? defaultScanColumns(dk, S * H);
    const sl = scanLayout(dk, scanColumns);
    // the scan's text (and bindings) depend on whether dv is whole quads
    const dvQuads = dv % 4 === 0;
    // Chunk slots (chunk-common.ts); the split form keeps the state at each one's start.
    const slots = Math.ceil(P / C) + S;
    const split = 4 * slots * H * dk * dv <= ctx.limits.maxStorageBufferBindingSize;
    // both kinds of segment: the scan's shared-segment workgroups first (scanKernelWgsl's `ordered`)
    const sharedCount = dims.sharedSegments ?? 0;
    const blocks = Math.ceil(dv / sl.bj);
    // shared first spreads the long shared chains over the multiprocessors; with one very long
    // chain per head (long segments) it measured slower, so only below LONG_CHAINS
    const scanOrder = options.scanOrder ?? (P / S < LONG_CHAINS ? 'shared-first' : 'segment');
    const ordered = scanOrder === 'shared-first' && sharedCount > 0 && sharedCount < S;
    const key = `${dk},${limit},${scanColumns},${dvQuads},${split},${ordered}`;
    let t = texts.get(key);
    if (!t) {
      const pl = prepareLayout(form, limit);
      if (pl.tk < 1) checkWorkgroupBytes(ctx, pl.bytes, what); // throws, naming the limit
      checkWorkgroupBytes(ctx, sl.bytes, what);
      t = {
        prepare: prepareKernelWgsl(form, dk, pl.tk),
        wu: form.delta ? wuKernelWgsl(form, dk) : '',
        scan: scanKernelWgsl(form, dk, scanColumns, dvQuads, split, ordered),
        output: split ? outputKernelWgsl(form, dk) : '',
      };
      texts.set(key, t);
    }
    const b: ChunkBuffers = {
      cu: buffers.cu,
      q: buffers.q,
      k: buffers.inputs[ik],
      v: buffers.inputs[iv],
      g: ig >= 0 ? buffers.inputs[ig] : undefined,
      beta: ib >= 0 ? buffers.inputs[ib] : undefined,
      G: form.decay !== 'none' ? cachedScratch(ctx, `chunk-G${form.decay}`, P * H * (form.decay === 'channel' ? dk : 1)) : undefined,
      A: cachedScratch(ctx, 'chunk-Aqk', P * H * C),
      W: form.delta ? cachedScratch(ctx, 'chunk-W', P * H * dk) : undefined,
      U: form.delta ? cachedScratch(ctx, 'chunk-U', P * H * dv) : undefined,
      Ainv: form.delta ? cachedScratch(ctx, 'chunk-Ainv', P * H * C) : undefined,
      state: buffers.state,
      o: buffers.o,
      params: cachedUniform(ctx, [S, C, H, dv, S - sharedCount, blocks]),
      Vn: split && form.delta ? cachedScratch(ctx, 'chunk-Vn', P * H * dv) : undefined,
      Hc: split ? cachedScratch(ctx, 'chunk-Hc', slots * H * dk * dv) : undefined,
    };
    const pre = prepareBindings(form, b);
    const wu = form.delta ? wuBindings(form, b) : [];
    const scan = scanBindings(form, b, dk % 4 === 0, dvQuads, split);
    const out = split ? outputBindings(form, b) : [];
    checkStorageBindings(ctx, pre, what);
    checkStorageBindings(ctx, wu, what);
    checkStorageBindings(ctx, scan, what);
    checkStorageBindings(ctx, out, what);

    // Chunk slots on a 2-D grid when one dimension cannot hold them all.
    const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
    const gx = Math.min(slots, maxDim);
    const gy = gridDim(ctx, Math.ceil(slots / gx), `${what} prepare`);
    const folded = ordered ? gridFor(ctx.limits, S * H * blocks, `${what} scan`) : null;
    const grid = folded ? ([folded.x, folded.y, 1] as const) : ([gridDim(ctx, S, what), gridDim(ctx, H, what), gridDim(ctx, blocks, what)] as const);
    const record = (pass: ChunkPasses) => passes === 'all' || passes === pass;
    if (record('prepare')) encodePass(ctx, enc, `${spec.name}:chunk-prepare`, ctx.pipeline(`${spec.name}:chunk-prepare`, t.prepare), pre, [gx, gy, gridDim(ctx, H, what)]);
    if (form.delta && record('wu')) {
      const z = gridDim(ctx, H * Math.ceil(Math.max(dk, dv) / 64), `${what} wu`);
      encodePass(ctx, enc, `${spec.name}:chunk-wu`, ctx.pipeline(`${spec.name}:chunk-wu`, t.wu), wu, [gx, gy, z]);
    }
    if (record('scan')) encodePass(ctx, enc, `${spec.name}:chunk-scan`, ctx.pipeline(`${spec.name}:chunk-scan`, t.scan), scan, grid);
    if (split && record('output')) {
      const z = gridDim(ctx, H * Math.ceil(dv / 64), `${what} output`);
      encodePass(ctx, enc, `${spec.name}:chunk-output`, ctx.pipeline(`${spec.name}:chunk-output`, t.output), out, [gx, gy, z]);
    }
  };
}
