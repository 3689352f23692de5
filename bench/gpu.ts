/**
 * GPU benchmark of the MoM forward in the core form (issue #6): gated-delta, E = 4, k = 2,
 * shared memory on, float32, q / k / v / g / β and router logits given.
 *
 *   npx tsx bench/gpu.ts --sizes small|large [--parts forward,ceilings,decode]
 *                        [--modes chunk,recurrent] [--shapes standard,long,small] [--repeats N] [--out DIR]
 *
 * For each shape and kernel path (chunked, C = 64; token-by-token), the median of N repeats (in rounds until two consecutive medians agree within 3%) of
 * the whole forward (router, gather, per-memory kernel, mix: one ForwardPlan.encode, bracketed
 * by GPU timestamps), and the per-memory kernel alone on gathered inputs with the same segment
 * lengths (for the chunked path also its prepare, wu, scan and output dispatches alone), so that the
 * difference is the router + gather + mix. FLOPs and bytes are counted in bench/work.ts; the
 * ceilings (a fast WGSL matmul, copy bandwidth) are
 * measured in the same run (bench/ceilings.ts);
 * decode latency at several contexts in bench/decode.ts. `--out DIR` writes gpu.json and
 * decode-latency.svg there.
 *
 * `large` runs the issue's shapes (it needs a big GPU: the long shape moves ~8 GB of buffers);
 * `small` runs the same code at sizes the software driver (lavapipe) handles in seconds.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { shippedRuleText } from '../src/rules.js';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { scratchBuffer } from '../gpu/buffers.js';
import { getGpu, type GpuContext } from '../gpu/device.js';
import { makeChunkEncoder, type ChunkOptions, type ChunkPasses } from '../gpu/kernels/chunk-encoder.js';
import { makeRecurrentFastEncoder } from '../gpu/kernels/recurrent-fast.js';
import { gatedDelta } from '../gpu/kernels/gated-delta.js';
import { gpuBackwardFromChecked } from '../gpu/kernels/backward.js';
import { gpuRuleFromText } from '../gpu/kernels/from-text.js';
import { GpuError } from '../reference/errors.js';
import type { KernelMode, RuleBuffers, RuleDims } from '../gpu/kernels/types.js';
import { ForwardPlan, gpuMomForward } from '../gpu/mom.js';
import { momForward } from '../reference/mom.js';
import { gatedDelta as gatedDeltaRef } from '../reference/rules/gated-delta.js';
import { widthOf, type CoreConfig } from '../reference/types.js';
import { measureCeilings, type Ceilings } from './ceilings.js';
import { benchDecode, type DecodeResult, type DecodeShape } from './decode.js';
import { benchInputs, tiled } from './inputs.js';
import { decodeSvg } from './svg.js';
import { GpuTimer, median, type TimingKind } from './timer.js';
import { chunkFlops, forwardBytes, segmentsOf, type Segments } from './work.js';

export type Sizes = 'small' | 'large';

export interface ForwardShape {
  name: string;
  B: number;
  T: number;
  H: number;
  dk: number;
  dv: number;
  /** flash-linear-attention's Triton kernels on the H200, float32, do_bench median, ms (issue #6) */
  triton?: { chunk: number; recurrent: number; chunkBf16: number };
}

const E = 4;
const TOPK = 2;
const CHUNK = 64;

export const SHAPES: Record<Sizes, ForwardShape[]> = {
  large: [
    { name: 'standard', B: 4, T: 8192, H: 8, dk: 128, dv: 128, triton: { chunk: 4.24, recurrent: 7.48, chunkBf16: 1.43 } },
    { name: 'long', B: 1, T: 65536, H: 8, dk: 128, dv: 128, triton: { chunk: 11.07, recurrent: 46.19, chunkBf16: 3.49 } },
    { name: 'small heads', B: 8, T: 2048, H: 16, dk: 64, dv: 64, triton: { chunk: 1.74, recurrent: 2.21, chunkBf16: 0.79 } },
  ],
  // T not a multiple of the chunk; one dk so lavapipe compiles one set of pipelines
  small: [{ name: 'small', B: 2, T: 100, H: 2, dk: 32, dv: 32 }],
};

const DECODE: Record<Sizes, { shape: DecodeShape; contexts: number[]; piece: number; steps: number }> = {
  large: { shape: { B: 1, H: 8, E, topk: TOPK, dk: 128, dv: 128 }, contexts: [1024, 16384, 65536], piece: 1024, steps: 100 },
  small: { shape: { B: 1, H: 2, E, topk: TOPK, dk: 32, dv: 32 }, contexts: [64, 256, 1024], piece: 64, steps: 10 },
};

const CEILING: Record<Sizes, { n: number; copyBytes: number }> = {
  large: { n: 4096, copyBytes: 1 << 30 },
  small: { n: 256, copyBytes: 1 << 24 },
};

export interface ForwardRow {
  shape: ForwardShape;
  mode: KernelMode;
  /** whole forward, median ms, and every repeat (of the last round: see GpuTimer.settledMedian) */
  ms: number;
  repeats: number[];
  /** rounds of repeats until consecutive medians agreed within 3%, and whether they did */
  rounds?: number;
  settled?: boolean;
  /** the per-memory kernel alone; for the chunked path also its dispatches alone */
  ruleMs: number;
  prepareMs?: number;
  /** the W / U kernel (absent in result files from before it was split out of prepare) */
  wuMs?: number;
  scanMs?: number;
  /** router, gather and mix kernel by kernel, ms (each route-and-gather figure is a difference of timed prefixes) */
  frontMs?: Record<string, number>;
  /** the split form's output kernel alone (O from V' and the chunk-start states) */
  outputMs?: number;
  /**
   * the default kernel alone on the routed segments only and on the shared segments only (the
   * others given no tokens): whether the longest chains (shared) or the total work bounds it
   */
  groupsMs?: { routed: number; shared: number };
  /** the kernel alone in its other layouts, ms (token-by-token: other reductions and workgroup orders; chunk: the scan's other workgroup orders and column blocks) */
  variants?: Record<string, number>;
  flops: number;
  bytes: number;
  positions: number;
  longestSegment: number;
}

export interface GpuBenchResult {
  date: string;
  device: string;
  /** extra Dawn toggles of the run (MOMLAB_DAWN_ENABLE), empty when none */
  toggles?: string;
  command: string;
  timing: TimingKind;
  sizes: Sizes;
  ceilings?: Ceilings;
  /** the forward at a medium size against the float64 reference: docs/spec.md §9 error of o per mode */
  check?: { shape: string; err: Record<string, number> };
  forward: ForwardRow[];
  decode?: DecodeResult;
  backward?: BackwardRow;
}

/** Issue 17 §5: the token-by-token backward generated from rules/gated-delta.rule, next to the forward kernel from the same text. */
export interface BackwardRow {
  shape: ForwardShape;
  /** the forward kernel compiled from the text, on the same gathered segments, median ms */
  forwardMs?: number;
  /** the backward kernel, median ms */
  backwardMs?: number;
  /** why it did not run at this shape (the simple scheme's workgroup memory or state history does not fit) */
  skipped?: string;
}

const cfgOf = (s: ForwardShape): CoreConfig => ({ B: s.B, T: s.T, H: s.H, E, topk: TOPK, dk: s.dk, dv: s.dv, shared: true });

/** Gathered inputs with the given segment lengths (random values, tiled), for the kernel alone. */
function gatheredProblem(ctx: GpuContext, s: ForwardShape, seg: Segments) {
  const { H, dk, dv } = s;
  const P = seg.positions;
  const S = seg.lengths.length;
  const owned: GPUBuffer[] = [];
  const fill = (label: string, words: number, lo: number, hi: number, seed: number, unit = 0) => {
    const buf = scratchBuffer(ctx, label, words);
    owned.push(buf);
    const block = Float32Array.from(tiled(Math.min(words, 1 << 20), lo, hi, seed, unit));
    for (let o = 0; o < words; o += block.length) ctx.device.queue.writeBuffer(buf, o * 4, block, 0, Math.min(block.length, words - o));
    return buf;
  };
  const cu = new Uint32Array(S + 1);
  seg.lengths.forEach((n, i) => (cu[i + 1] = cu[i] + n));
  const cuBuf = scratchBuffer(ctx, 'cu', S + 1);
  owned.push(cuBuf);
  ctx.device.queue.writeBuffer(cuBuf, 0, cu);
  const buffers: RuleBuffers = {
    cu: cuBuf,
    q: fill('q', P * H * dk, -1 / Math.sqrt(dk), 1 / Math.sqrt(dk), 21),
    // gated-delta's inputs in the rule's order: k, v, g, beta
    inputs: [fill('k', P * H * dk, -1, 1, 22, dk), fill('v', P * H * dv, -1, 1, 23), fill('g', P * H, -0.2, -0.001, 24), fill('beta', P * H, 0.05, 0.95, 25)],
    state: fill('state', S * H * dk * dv, -0.1, 0.1, 26),
    o: fill('o', P * H * dv, 0, 0, 27),
  };
  const names = gatedDeltaRef.inputs.map((d) => d.name).join(',');
  if (names !== 'k,v,g,beta') throw new Error(`bench: gated-delta's inputs are now ${names}; update gatheredProblem`);
  const dims: RuleDims = { segments: S, positions: P, H, dk, dv, sharedSegments: s.B };
  return { buffers, dims, destroy: () => owned.forEach((b) => b.destroy()) };
}

async function benchForward(ctx: GpuContext, timer: GpuTimer, s: ForwardShape, modes: KernelMode[], repeats: number, log: (m: string) => void): Promise<ForwardRow[]> {
  const cfg = cfgOf(s);
  const x = benchInputs(cfg, 1);
  const seg = segmentsOf(Float32Array.from(x.logits), cfg);
  const flops = chunkFlops(seg, cfg, CHUNK);
  const rows: ForwardRow[] = [];
  const chunkEncoder = makeChunkEncoder({ name: gatedDeltaRef.name, inputs: gatedDeltaRef.inputs, form: { decay: 'scalar', delta: true } });
  for (const mode of modes) {
    const bytes = forwardBytes(seg, cfg, CHUNK, mode === 'recurrent' ? 'recurrent' : 'chunk');
    const plan = await ForwardPlan.create(ctx, gatedDelta, cfg, { mode, chunk: CHUNK });
    let whole: { ms: number; repeats: number[]; rounds: number; settled: boolean };
    let frontMs: Record<string, number> | undefined;
    let split: number[] | undefined;
    try {
      plan.write(x);
      whole = await timer.settledMedian((enc) => plan.encode(enc), repeats, 2);
      // right after it, the same forward with a timestamp after each of its three passes
      // (route and gather, rule kernels, mix): medians of `repeats` submits
      const pieces: number[][] = [];
      for (let i = 0; i < repeats; i++) {
        const t = await timer.timePieces([(enc) => plan.encodePart(enc, 'front'), (enc) => plan.encodePart(enc, 'rule'), (enc) => plan.encodePart(enc, 'mix')]);
        if (t) pieces.push(t);
      }
      if (pieces.length) split = ['route and gather', 'rule kernels', 'mix'].map((_, i) => median(pieces.map((p) => p[i])));
      // router + gather + mix kernel by kernel: prefixes of the route-and-gather pass, then the mix
      {
        frontMs = {};
        const labels = plan.frontLabels();
        let before = 0;
        for (let i = 1; i <= labels.length; i++) {
          const ms = (await timer.settledMedian((enc) => plan.encodePart(enc, 'front', i), repeats, 1)).ms;
          frontMs[labels[i - 1]] = ms - before;
          before = ms;
        }
        frontMs.mix = (await timer.settledMedian((enc) => plan.encodePart(enc, 'mix'), repeats, 1)).ms;
        // the rule's kernels on the plan's own gathered buffers (the kernel figure below uses a
        // separate gathered problem with the same segments)
        frontMs['rule kernels in the plan'] = (await timer.settledMedian((enc) => plan.encodePart(enc, 'rule'), repeats, 1)).ms;
        // the whole forward again, after the parts: an order or clock effect shows as a difference
        if (split) ['route and gather', 'rule kernels', 'mix'].forEach((name, i) => (frontMs![`first timing, ${name} piece`] = split![i]));
        frontMs['whole forward, timed again'] = (await timer.settledMedian((enc) => plan.encode(enc), repeats, 2)).ms;
        // ten forwards in one timed submit, per forward: no host round trip between them (as
        // triton's do_bench, which queues its repeats without waiting)
        frontMs['whole forward, 10 back to back, per forward'] = (await timer.settledMedian((enc) => { for (let i = 0; i < 10; i++) plan.encode(enc); }, repeats, 1)).ms / 10;
      }
    } finally {
      plan.destroy();
    }
    const pb = gatheredProblem(ctx, s, seg);
    const row: ForwardRow = { shape: s, mode, ms: whole.ms, repeats: whole.repeats, rounds: whole.rounds, settled: whole.settled, ruleMs: 0, flops, bytes, positions: seg.positions, longestSegment: Math.max(...seg.lengths), frontMs };
    try {
      if (mode === 'chunk') {
        const part = (passes: ChunkPasses) => timer.settledMedian((enc) => chunkEncoder(ctx, enc, pb.dims, pb.buffers, CHUNK, passes), repeats, 1);
        row.ruleMs = (await part('all')).ms;
        row.prepareMs = (await part('prepare')).ms;
        row.wuMs = (await part('wu')).ms;
        row.scanMs = (await part('scan')).ms;
        row.outputMs = (await part('output')).ms;
        row.variants = {};
        const form = { decay: 'scalar', delta: true } as const;
        // the scan in the layouts the defaults pick at other shapes
        const variant = async (name: string, options: ChunkOptions) => {
          const encode = makeChunkEncoder({ name: gatedDeltaRef.name, inputs: gatedDeltaRef.inputs, form }, options);
          row.variants![name] = (await timer.settledMedian((enc) => encode(ctx, enc, pb.dims, pb.buffers, CHUNK, 'scan'), repeats, 1)).ms;
        };
        await variant('scan, segment order', { scanOrder: 'segment' });
        await variant('scan, shared first', { scanOrder: 'shared-first' });
        await variant('scan, 8 columns', { scanColumns: 8 });
        await variant('scan, 16 columns', { scanColumns: 16 });
      } else {
        row.ruleMs = (await timer.settledMedian((enc) => gatedDelta.encode(ctx, enc, pb.dims, pb.buffers, { mode }), repeats, 1)).ms;
        // the other layouts of the same kernel. 'segment order': the same dims without
        // sharedSegments, so the workgroups go out in (segment, head, block) order.
        const spec = { name: gatedDelta.name, inputs: gatedDelta.inputs, form: gatedDelta.form };
        const unordered = { ...pb.dims, sharedSegments: 0 };
        const variants: Record<string, [(c: GpuContext, e: GPUCommandEncoder, d: RuleDims, b: RuleBuffers) => void, RuleDims]> = {
          'workgroup reduction R 8, shared first': [makeRecurrentFastEncoder(spec, { subgroups: false, threadsPerColumn: 8 }), pb.dims],
        };
        if (ctx.features.has('subgroups')) {
          variants['subgroups R 2, segment order'] = [makeRecurrentFastEncoder(spec, { subgroups: true, threadsPerColumn: 2 }), unordered];
          variants['subgroups R 2, shared first'] = [makeRecurrentFastEncoder(spec, { subgroups: true, threadsPerColumn: 2 }), pb.dims];
          variants['subgroups R 4, segment order'] = [makeRecurrentFastEncoder(spec, { subgroups: true, threadsPerColumn: 4 }), unordered];
          variants['subgroups R 4, shared first'] = [makeRecurrentFastEncoder(spec, { subgroups: true, threadsPerColumn: 4 }), pb.dims];
          variants['two layouts R 2 + R 4 (shared first)'] = [makeRecurrentFastEncoder(spec, { subgroups: true, threadsPerColumn: 2, sharedLayout: { threadsPerColumn: 4 } }), pb.dims];
        }
        row.variants = {};
        for (const [name, [encode, dims]] of Object.entries(variants)) {
          row.variants[name] = (await timer.settledMedian((enc) => encode(ctx, enc, dims, pb.buffers), repeats, 1)).ms;
        }
      }
      const groupsMs = (row.groupsMs = { routed: 0, shared: 0 });
      for (const group of ['routed', 'shared'] as const) {
        const routedCount = seg.lengths.length - s.B;
        const lengths = seg.lengths.map((n, i) => ((i < routedCount) === (group === 'routed') ? n : 0));
        const gp = gatheredProblem(ctx, s, { lengths, positions: lengths.reduce((a, b) => a + b, 0) });
        try {
          const encode = (enc: GPUCommandEncoder) => (mode === 'chunk' ? chunkEncoder(ctx, enc, gp.dims, gp.buffers, CHUNK) : gatedDelta.encode(ctx, enc, gp.dims, gp.buffers, { mode }));
          groupsMs[group] = (await timer.settledMedian(encode, repeats, 1)).ms;
        } finally {
          gp.destroy();
        }
      }
    } finally {
      pb.destroy();
    }
    rows.push(row);
    log(formatRow(row));
  }
  return rows;
}

const f = (v: number | undefined, d = 3) => (v === undefined ? '-' : v.toPrecision(d));

export function formatRow(r: ForwardRow): string {
  const s = r.shape;
  const tflops = r.flops / (r.ms * 1e-3) / 1e12;
  const tbps = r.bytes / (r.ms * 1e-3) / 1e12;
  const target = s.triton ? (r.mode === 'chunk' ? s.triton.chunk : s.triton.recurrent) : undefined;
  const parts =
    r.mode === 'chunk'
      ? `prepare ${f(r.prepareMs)} + wu ${f(r.wuMs)} + scan ${f(r.scanMs)} + output ${f(r.outputMs)}; ${Object.entries(r.variants ?? {}).map(([k, v]) => `${k} ${f(v)}`).join(', ')}`
      : `recurrent; ${Object.entries(r.variants ?? {}).map(([k, v]) => `${k} ${f(v)}`).join(', ')}`;
  const front = r.frontMs ? ` (${Object.entries(r.frontMs).map(([k, v]) => `${k} ${f(v)}`).join(', ')})` : '';
  return (
    `${s.name} (B ${s.B}, T ${s.T}, H ${s.H}, dk ${s.dk}, dv ${s.dv}) ${r.mode}: ${f(r.ms, 4)} ms` +
    (r.rounds ? ` [${r.rounds} rounds${r.settled ? '' : ', NOT settled'}]` : '') +
    (target ? ` (Triton f32 ${target} ms: ${r.ms <= target ? 'met' : `${(r.ms / target).toFixed(2)}x over`})` : '') +
    `; kernel ${f(r.ruleMs)} ms (${parts})${r.groupsMs ? `, kernel on routed segments only ${f(r.groupsMs.routed)}, shared only ${f(r.groupsMs.shared)}` : ''}, router+gather+mix ${f(r.ms - r.ruleMs)} ms${front}; ` +
    `${f(tflops)} TFLOP/s of ${f(r.flops / 1e9)} GFLOP (chunk count); ${f(tbps)} TB/s of ${f(r.bytes / 1e9)} GB`
  );
}

export async function benchGpu(opts: { sizes: Sizes; parts?: string[]; modes?: KernelMode[]; shapes?: string[]; repeats?: number; command?: string; log?: (m: string) => void }): Promise<GpuBenchResult> {
  const log = opts.log ?? ((m: string) => console.log(m));
  const parts = opts.parts ?? ['check', 'ceilings', 'forward', 'decode', 'backward'];
  const modes = opts.modes ?? ['chunk', 'recurrent'];
  const repeats = opts.repeats ?? (opts.sizes === 'large' ? 7 : 3);
  const ctx = await getGpu();
  const timer = new GpuTimer(ctx);
  const result: GpuBenchResult = {
    date: new Date().toISOString(),
    device: ctx.adapterInfo,
    toggles: process.env.MOMLAB_DAWN_ENABLE ?? '',
    command: opts.command ?? `tsx bench/gpu.ts --sizes ${opts.sizes}`,
    timing: timer.kind,
    sizes: opts.sizes,
    forward: [],
  };
  log(`device: ${result.device}; timing: ${timer.kind === 'gpu-timestamps' ? 'GPU timestamps (unquantised)' : "wall clock + onSubmittedWorkDone (no 'timestamp-query' on this adapter: figures include the host round trip)"}`);
  if (parts.includes('ceilings')) {
    const c = CEILING[opts.sizes];
    result.ceilings = await measureCeilings(ctx, timer, c.n, c.copyBytes, repeats);
    const m = result.ceilings.matmul;
    log(`ceilings: WGSL f32 matmul ${m.n}^3 ${f(m.ms)} ms = ${f(m.tflops)} TFLOP/s (${m.kernel}; ${m.checked ? 'spot-checked exact' : 'WRONG RESULT'}); copy ${f(result.ceilings.copy.tbps)} TB/s`);
    log(`  matmul kernels: ${m.kernels.map((k) => `${k.label} ${f(k.tflops)} TFLOP/s${k.checked ? '' : ' (WRONG RESULT)'}`).join(', ')}`);
  }
  if (parts.includes('check')) {
    result.check = await checkForward(ctx, opts.sizes, log);
  }
  if (parts.includes('forward')) {
    for (const s of SHAPES[opts.sizes].filter((x) => !opts.shapes || opts.shapes.includes(x.name.split(' ')[0]))) result.forward.push(...(await benchForward(ctx, timer, s, modes, repeats, log)));
  }
  if (parts.includes('decode')) {
    const d = DECODE[opts.sizes];
    result.decode = await benchDecode(ctx, timer, d.shape, d.contexts, d.piece, d.steps);
    const dr = result.decode;
    log(`decode (wall clock, GpuMomState.step): ${dr.rows.map((r) => `${r.context} tokens: ${f(r.ms)} ms`).join('; ')}; on the device: ${dr.deviceRows.map((r) => `${r.context} tokens: ${f(r.ms)} ms`).join('; ')}; state ${dr.stateBytes} bytes (docs/spec.md §7 formula ${dr.formulaBytes})`);
  }
  if (parts.includes('backward')) {
    result.backward = await benchBackward(ctx, timer, SHAPES[opts.sizes][0], repeats);
    const b = result.backward;
    log(`backward (gated-delta from its rule file, token by token, kernel alone): ${b.skipped ?? `${f(b.backwardMs)} ms; the forward kernel from the same text ${f(b.forwardMs)} ms`}`);
  }
  timer.destroy();
  return result;
}

/** The backward kernel (gpu/kernels/backward.ts) and the text forward kernel on the forward shape's gathered segments. */
async function benchBackward(ctx: GpuContext, timer: GpuTimer, s: ForwardShape, repeats: number): Promise<BackwardRow> {
  const text = shippedRuleText('gated-delta');
  const fwd = gpuRuleFromText(text, { name: 'gated-delta' });
  const back = gpuBackwardFromChecked(fwd.checked);
  const cfg = cfgOf(s);
  const seg = segmentsOf(Float32Array.from(benchInputs(cfg, 1).logits), cfg);
  const { buffers, dims, destroy } = gatheredProblem(ctx, s, seg);
  const { positions: P, segments: S, H, dk, dv } = dims;
  const extra: GPUBuffer[] = [];
  try {
    const scratch = (label: string, words: number) => extra[extra.push(scratchBuffer(ctx, label, words)) - 1];
    const bb = {
      ...buffers,
      do: scratch('do', P * H * dv),
      dstate: scratch('dstate', S * H * dk * dv),
      dq: scratch('dq', P * H * dk),
      dx: scratch('dx', P * H * fwd.inputs.reduce((a, d) => a + widthOf(d.width, dims), 0)),
      hist: scratch('hist', P * H * dk * dv),
    };
    const forwardMs = (await timer.settledMedian((enc) => fwd.encode(ctx, enc, dims, buffers, { mode: 'recurrent' }), repeats, 1)).ms;
    const backwardMs = (await timer.settledMedian((enc) => back.encode(ctx, enc, dims, bb), repeats, 1)).ms;
    return { shape: s, forwardMs, backwardMs };
  } catch (e) {
    if (e instanceof GpuError) return { shape: s, skipped: `not run at ${s.name}: ${e.message}` };
    throw e;
  } finally {
    extra.forEach((b) => b.destroy());
    destroy();
  }
}

/**
 * The whole forward at a medium size (large: B 2, T 1000, H 4, dk = dv = 128; small: the small
 * shape) in both modes against the float64 reference (reference/mom.ts), docs/spec.md §9's error of o:
 * the speed figures are only worth something if the kernels still compute the right thing at
 * the head sizes and segment lengths the device runs.
 */
async function checkForward(ctx: GpuContext, sizes: Sizes, log: (m: string) => void) {
  const s = sizes === 'large' ? { B: 2, T: 1000, H: 4, dk: 128, dv: 128 } : { B: 2, T: 100, H: 2, dk: 32, dv: 32 };
  const cfg: CoreConfig = { ...s, E, topk: TOPK, shared: true };
  const x = benchInputs(cfg, 5);
  const want = momForward(gatedDeltaRef, cfg, x).o;
  const err: Record<string, number> = {};
  for (const mode of ['chunk', 'recurrent'] as const) {
    const got = (await gpuMomForward(ctx, gatedDelta, cfg, x, { mode, chunk: CHUNK })).o;
    let d2 = 0;
    let r2 = 0;
    for (let i = 0; i < want.length; i++) {
      d2 += (want[i] - got[i]) ** 2;
      r2 += want[i] ** 2;
    }
    err[mode] = Math.sqrt(d2 / want.length) / (Math.sqrt(r2 / want.length) + 1e-8);
  }
  const shape = `B ${s.B}, T ${s.T}, H ${s.H}, dk ${s.dk}, dv ${s.dv}`;
  log(`check against the float64 reference (${shape}): docs/spec.md §9 error of o: chunk ${err.chunk.toExponential(2)}, recurrent ${err.recurrent.toExponential(2)}`);
  return { shape, err };
}

function argValue(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argv = process.argv.slice(2);
  const sizes = (argValue(argv, '--sizes') ?? 'small') as Sizes;
  if (sizes !== 'small' && sizes !== 'large') throw new Error(`--sizes must be small or large, got ${sizes}`);
  const out = argValue(argv, '--out');
  const result = await benchGpu({
    sizes,
    parts: argValue(argv, '--parts')?.split(','),
    modes: argValue(argv, '--modes')?.split(',') as KernelMode[] | undefined,
    // shapes by their first word: standard, long, small
    shapes: argValue(argv, '--shapes')?.split(','),
    repeats: argValue(argv, '--repeats') ? Number(argValue(argv, '--repeats')) : undefined,
    command: `bench/gpu.ts ${argv.join(' ')}`,
  });
  if (out) {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'gpu.json'), JSON.stringify(result, null, 1));
    if (result.decode) writeFileSync(join(out, 'decode-latency.svg'), decodeSvg(result.decode, `${result.device}, ${result.date.slice(0, 10)}, ${result.timing}`));
  }
  process.exit(0);
}
