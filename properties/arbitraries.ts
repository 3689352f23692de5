/**
 * Small composable fast-check arbitraries for MoM cases, generic over any `Rule` (built-in or a
 * rule written as math): they only read `rule.inputs` (name, width, range).
 *
 * Choices, and why:
 * - Sizes are independent integers (E = topk + extra, so topk ≤ E by construction): each shrinks
 *   on its own and a counterexample ends up as small as it can be.
 * - Values sit on a 2^-16 grid (integer / 65536), exact in float32, so the GPU sees exactly the
 *   numbers the float64 reference sees; the only rounding left is the arithmetic itself.
 *   (fc.float would crowd values near 0, which hides relative errors.) The few values that are
 *   not on the grid (normalised keys) are rounded to float32 here, for the same reason.
 * - Never all zeros: an all-zero array is nudged (one element set), so no property passes on
 *   zeros.
 * - Input ranges follow each InputDecl (docs/spec.md §3: delta rules need unit keys and β in (0,1)):
 *   normalized → unit l2 norm per vector; logdecay → g ∈ [−2.01, −0.01]; unit → β ∈ [0.05, 0.95].
 * - Awkward sizes on purpose: T = 1, T = C ± 1 for every chunk size, k = E (extra = 0), memories
 *   that get no token (a starved router column), tied router logits.
 */
import fc from 'fast-check';
import type { CoreConfig, CoreInputs, CoreState, InputDecl, MemoryInputs } from '../reference/types.js';
import { intervalSpan } from '../reference/types.js';

export const GRID = 65536;

/** A value in [−1, 1] on the 2^-16 grid (exact in float32). */
export const gridValue: fc.Arbitrary<number> = fc.integer({ min: -GRID, max: GRID }).map((i) => i / GRID);

/** Size ranges of a case; every range is inclusive. */
export interface SizeRanges {
  B: readonly [number, number];
  T: readonly [number, number];
  H: readonly [number, number];
  topk: readonly [number, number];
  /** E = topk + extra; extra = 0 is the k = E case */
  extraE: readonly [number, number];
  /**
   * dk and dv come from small sets so that GPU pipelines (cached by WGSL text) are reused; each
   * set holds dims that are not a multiple of 4 (the kernels' scalar and tail paths)
   */
  dk: readonly number[];
  dv: readonly number[];
  /**
   * rare dv above 64 (a second column block in every kernel), drawn about once in WIDE_ODDS + 1
   * cases: dv only, because the chunked kernels' pipelines are keyed by dk, so a wide dv compiles
   * few new ones (each costs seconds on the software driver); none when absent
   */
  wide?: readonly number[];
  /** longest head sequence for the rule-level (HeadSequence) properties */
  seqLen: readonly [number, number];
}

/** dv is drawn from `wide` with weight 1 against this weight for the common ones. */
export const WIDE_ODDS = 24;

export const SIZES = {
  // Sized for the software driver (lavapipe, ~1 GFLOP/s): the whole GPU suite in a couple of minutes.
  small: { B: [1, 2], T: [1, 40], H: [1, 2], topk: [1, 3], extraE: [0, 2], dk: [3, 8], dv: [3, 8], wide: [65], seqLen: [1, 80] },
  medium: { B: [1, 3], T: [1, 140], H: [1, 3], topk: [1, 4], extraE: [0, 4], dk: [3, 6, 8, 16], dv: [3, 6, 8, 16], wide: [65], seqLen: [1, 200] },
  large: { B: [1, 4], T: [1, 400], H: [1, 4], topk: [1, 4], extraE: [0, 6], dk: [13, 16, 32, 64], dv: [13, 16, 32, 64], wide: [65, 100], seqLen: [1, 400] },
} as const satisfies Record<string, SizeRanges>;
export type SizeName = keyof typeof SIZES;

/** A head dim: one of `common` mostly, one of `wide` about once in WIDE_ODDS + 1 draws (shrinking to a common one). */
export function dimArb(common: readonly number[], wide: readonly number[] = []): fc.Arbitrary<number> {
  const c = fc.constantFrom(...common);
  return wide.length ? fc.oneof({ arbitrary: c, weight: WIDE_ODDS }, { arbitrary: fc.constantFrom(...wide), weight: 1 }) : c;
}

/** Lengths around every chunk size (16, 32, 64), plus 1: where off-by-one bugs live. */
const AWKWARD_T = [1, 2, 15, 17, 31, 33, 63, 65, 129];

/** T drawn mostly uniformly, sometimes from the awkward lengths that fit the range. */
export function lengthArb([min, max]: readonly [number, number]): fc.Arbitrary<number> {
  const awkward = AWKWARD_T.filter((t) => t >= min && t <= max);
  const uniform = fc.integer({ min, max });
  return awkward.length ? fc.oneof({ arbitrary: uniform, weight: 3 }, { arbitrary: fc.constantFrom(...awkward), weight: 1 }) : uniform;
}

/** A core configuration; `shared` may be forced (e.g. a property about the shared memory). */
export function coreConfigArb(s: SizeRanges, opts: { shared?: boolean; T?: fc.Arbitrary<number> } = {}): fc.Arbitrary<CoreConfig> {
  return fc
    .record({
      B: fc.integer({ min: s.B[0], max: s.B[1] }),
      T: opts.T ?? lengthArb(s.T),
      H: fc.integer({ min: s.H[0], max: s.H[1] }),
      topk: fc.integer({ min: s.topk[0], max: s.topk[1] }),
      extra: fc.integer({ min: s.extraE[0], max: s.extraE[1] }),
      dk: fc.constantFrom(...s.dk),
      dv: dimArb(s.dv, s.wide),
      shared: opts.shared === undefined ? fc.boolean() : fc.constant(opts.shared),
    })
    .map(({ extra, ...c }) => ({ ...c, E: c.topk + extra }));
}

/** Reference chunk sizes: the ones the issue names (1, 3, 16, 64) and any size up to 70. */
export const refChunkArb: fc.Arbitrary<number> = fc.oneof(fc.constantFrom(1, 3, 16, 64), fc.integer({ min: 1, max: 70 }));
/** GPU chunk sizes (gpu/kernels/types.ts CHUNK_SIZES). */
export const gpuChunkArb = fc.constantFrom(16 as const, 32 as const, 64 as const);

// ---------------------------------------------------------------------------------------------
// Values

/** Set one element when all are zero, so that no case is all zeros. */
function nonZero(a: Float64Array): Float64Array {
  if (a.length && a.every((v) => v === 0)) a[0] = 0.5;
  return a;
}

/** l2-normalise each consecutive vector of `width` values; a zero vector becomes e_0. */
function normalizeRows(a: Float64Array, width: number): Float64Array {
  for (let r = 0; r < a.length; r += width) {
    let ss = 0;
    for (let i = r; i < r + width; i++) ss += a[i] * a[i];
    if (ss === 0) {
      a[r] = 1;
      continue;
    }
    const inv = 1 / Math.sqrt(ss);
    // Rounded to float32 so both sides see the same key (its norm is then 1 within 1e-7).
    for (let i = r; i < r + width; i++) a[i] = Math.fround(a[i] * inv);
  }
  return a;
}

/** `n` grid values in [−1, 1], never all zero. */
export function gridArray(n: number): fc.Arbitrary<Float64Array> {
  return fc.int32Array({ min: -GRID, max: GRID, minLength: n, maxLength: n }).map((a) => nonZero(Float64Array.from(a, (i) => i / GRID)));
}

/**
 * `count` vectors of `width` values for one input, respecting its declared range. Ranges are
 * built from integers so they shrink towards the mildest value (g → −0.01, β → 0.05).
 */
export function inputValuesArb(decl: InputDecl, count: number, width: number): fc.Arbitrary<Float64Array> {
  const n = count * width;
  switch (decl.range) {
    case 'free':
      return gridArray(n);
    case 'normalized':
      return gridArray(n).map((a) => normalizeRows(a, width));
    case 'logdecay':
      // g = −(656 + 2i)/65536 ∈ [−2.01, −0.01]: a decay e^g between 0.13 and 0.99 per token.
      return fc.int32Array({ min: 0, max: GRID, minLength: n, maxLength: n }).map((a) => Float64Array.from(a, (i) => -(656 + 2 * i) / GRID));
    case 'unit':
      // β = (3277 + i)/65536 ∈ [0.05, 0.95]: inside (0, 1) with a margin.
      return fc.int32Array({ min: 0, max: 58982, minLength: n, maxLength: n }).map((a) => Float64Array.from(a, (i) => (3277 + i) / GRID));
    default: {
      // A rule file's literal bounds: GRID + 1 evenly spaced values over the span, shrinking to its low end.
      const [lo, hi] = intervalSpan(decl.range);
      return fc.int32Array({ min: 0, max: GRID, minLength: n, maxLength: n }).map((a) => Float64Array.from(a, (i) => lo + ((hi - lo) * i) / GRID));
    }
  }
}

const widthOfDecl = (d: InputDecl, dk: number, dv: number) => (d.width === 'dk' ? dk : d.width === 'dv' ? dv : 1);

/** One memory's inputs: name → [B, T, H, width], for any rule's input declarations. */
export function memoryInputsArb(inputs: readonly InputDecl[], cfg: CoreConfig): fc.Arbitrary<MemoryInputs> {
  const count = cfg.B * cfg.T * cfg.H;
  const parts: Record<string, fc.Arbitrary<Float64Array>> = {};
  for (const d of inputs) parts[d.name] = inputValuesArb(d, count, widthOfDecl(d, cfg.dk, cfg.dv));
  return fc.record(parts) as fc.Arbitrary<MemoryInputs>;
}

// ---------------------------------------------------------------------------------------------
// Router logits

/**
 * - 'spread': values in [−4, 4] on a 2^-10 grid. Two different logits differ by ≥ 2^-10, far
 *   above float32 softmax rounding, so the GPU and the reference pick the same memories; equal
 *   logits (exact ties) still happen now and then.
 * - 'ties': values from {−1, −0.5, 0, 0.5, 1}: many exact ties, to exercise the tie rule.
 * - 'distinct': no two logits of a token are equal (v·16 + e keeps them apart), for
 *   properties that must not depend on tie-breaking (relabelling the memories).
 */
export type LogitStyle = 'spread' | 'ties' | 'distinct';

export function logitsArb(B: number, T: number, E: number, style: LogitStyle): fc.Arbitrary<Float64Array> {
  const n = B * T * E;
  switch (style) {
    case 'spread':
      return fc.int32Array({ min: -4096, max: 4096, minLength: n, maxLength: n }).map((a) => Float64Array.from(a, (i) => i / 1024));
    case 'ties':
      return fc.int32Array({ min: -2, max: 2, minLength: n, maxLength: n }).map((a) => Float64Array.from(a, (i) => i / 2));
    case 'distinct':
      if (E > 16) throw new RangeError(`logitsArb 'distinct' supports E ≤ 16, got ${E}`);
      return fc.int32Array({ min: -256, max: 256, minLength: n, maxLength: n }).map((a) => Float64Array.from(a, (i, j) => (i * 16 + (j % E)) / 1024));
  }
}

/**
 * Make memory `e` lose every routing decision it can lose: its logit becomes −64 (far below the
 * rest, still a normal float32 after softmax). With topk < E it receives no token at all.
 */
export function starve(logits: Float64Array, E: number, e: number): Float64Array {
  for (let i = e; i < logits.length; i += E) logits[i] = -64;
  return logits;
}

// ---------------------------------------------------------------------------------------------
// Whole cases

export interface CoreInputsOptions {
  /** router logit style; default: any of the three */
  logits?: LogitStyle;
  /** allow a starved memory (default true) */
  starve?: boolean;
}

/** Inputs for `cfg`: q, router logits, every memory's inputs and the shared memory's. */
export function coreInputsArb(inputs: readonly InputDecl[], cfg: CoreConfig, opts: CoreInputsOptions = {}): fc.Arbitrary<CoreInputs> {
  const { B, T, H, E, dk } = cfg;
  const style = opts.logits ? fc.constant(opts.logits) : fc.constantFrom<LogitStyle>('spread', 'ties', 'distinct');
  const logits = style.chain((s) => logitsArb(B, T, E, s));
  const starved = opts.starve === false ? fc.constant(undefined) : fc.option(fc.integer({ min: 0, max: E - 1 }), { nil: undefined, freq: 3 });
  return fc
    .record({
      q: gridArray(B * T * H * dk),
      logits,
      starved,
      memories: fc.array(memoryInputsArb(inputs, cfg), { minLength: E, maxLength: E }),
      shared: cfg.shared ? memoryInputsArb(inputs, cfg) : fc.constant(null),
    })
    .map(({ starved: s, ...x }) => ({ ...x, logits: s === undefined ? x.logits : starve(x.logits, E, s) }));
}

/** A random state for every memory (routed [E, B, H, dk, dv], shared [B, H, dk, dv]). */
export function coreStateArb(cfg: Omit<CoreConfig, 'T'>): fc.Arbitrary<CoreState> {
  const per = cfg.B * cfg.H * cfg.dk * cfg.dv;
  return fc.record({
    routed: gridArray(cfg.E * per),
    shared: cfg.shared ? gridArray(per) : fc.constant(null),
  });
}

export interface CoreCase {
  cfg: CoreConfig;
  x: CoreInputs;
  /** the initial state; undefined = zeros */
  initial?: CoreState;
}

/**
 * A whole core case: configuration first (it shrinks first), then inputs drawn for it, and
 * sometimes a random initial state.
 */
export function coreCaseArb(
  inputs: readonly InputDecl[],
  sizes: SizeRanges,
  opts: CoreInputsOptions & { initial?: boolean; shared?: boolean; T?: fc.Arbitrary<number> } = {},
): fc.Arbitrary<CoreCase> {
  return coreConfigArb(sizes, { shared: opts.shared, T: opts.T }).chain((cfg) =>
    fc
      .record({
        x: coreInputsArb(inputs, cfg, opts),
        initial: opts.initial === false ? fc.constant(undefined) : fc.option(coreStateArb(cfg), { nil: undefined }),
      })
      .map(({ x, initial }) => (initial ? { cfg, x, initial } : { cfg, x })),
  );
}

/**
 * The summary of a case for a failure report: sizes and scalars as they are, arrays by length
 * (and their first values), so the shrunk configuration fits on a screen.
 */
export function summarize(v: unknown, depth = 0): unknown {
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
    const a = v as unknown as ArrayLike<number>;
    const head = Array.from({ length: Math.min(4, a.length) }, (_, i) => +a[i].toPrecision(6));
    return `${v.constructor.name}(${a.length}) [${head.join(', ')}${a.length > 4 ? ', …' : ''}]`;
  }
  if (Array.isArray(v)) return depth > 3 ? `Array(${v.length})` : v.map((e) => summarize(e, depth + 1));
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, e] of Object.entries(v)) out[k] = depth > 3 ? typeof e : summarize(e, depth + 1);
    return out;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// One head's sequence (the rule-level form of reference/rules/types.ts)

export interface HeadCase {
  n: number;
  dk: number;
  dv: number;
  /** [n*dk], taken as already scaled */
  q: Float64Array;
  /** name → [n*width] */
  inputs: Record<string, Float64Array>;
  /** initial state [dk*dv] */
  S0: Float64Array;
}

/**
 * A head sequence for any rule: n from `seqLen` (with the awkward lengths), dk and dv any
 * integer from 1 to `maxDim` (the reference has no preferred sizes; odd ones catch index bugs).
 */
export function headCaseArb(inputs: readonly InputDecl[], seqLen: readonly [number, number], maxDim = 8): fc.Arbitrary<HeadCase> {
  return fc
    .record({ n: lengthArb(seqLen), dk: fc.integer({ min: 1, max: maxDim }), dv: fc.integer({ min: 1, max: maxDim }) })
    .chain(({ n, dk, dv }) => {
      const parts: Record<string, fc.Arbitrary<Float64Array>> = {};
      for (const d of inputs) parts[d.name] = inputValuesArb(d, n, widthOfDecl(d, dk, dv));
      return fc
        .record({ q: gridArray(n * dk), inputs: fc.record(parts), S0: gridArray(dk * dv) })
        .map((r) => ({ n, dk, dv, ...r }) as HeadCase);
    });
}
