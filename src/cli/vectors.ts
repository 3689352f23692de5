/**
 * `momlab vectors`: golden test vectors for another implementation (e.g. fla's Triton kernels),
 * computed by the float64 reference, written in fla's layout. Two groups:
 *  - core.*  the MoM recurrence with gated-delta given q, k, v, g, beta and router logits
 *            directly (docs/spec.md §4, mix after; q unscaled, scale dk^-1/2 applied by the recurrence);
 *  - layer.* the whole layer (docs/spec.md §6) on hidden states with the weights in weights.safetensors,
 *            and its whole inference state after them (docs/spec.md §7): memory states and conv caches.
 * docs/vectors.md describes the files; docs/examples/verify_with_fla.py uses them.
 */
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from './args.js';
import { ConfigError, FormatError, MomlabError } from '../../reference/errors.js';
import { hasBackward } from '../../reference/backward/index.js';
import { getRule, RULE_NAMES } from '../../reference/rules/index.js';
import { mulberry32 } from '../../reference/sample.js';
import type { CoreConfig, RouteMix, Rule } from '../../reference/types.js';
import { layerForward } from '../../reference/layer.js';
import { layerDims, type LayerConfig, type LayerWeights } from '../../reference/layer-config.js';
import { layerWeightsFrom, readLayerConfig } from '../io/layer-files.js';
import { checkOutputs, sha256, writeAtomic } from '../io/files.js';
import { readSafetensors, serializeSafetensors, type TensorIn } from '../io/safetensors.js';
import { checkMemory, processContext, type CliContext } from './context.js';
import { resolveRule } from '../rules.js';
import { checkInputNames, coreVectors, coreVectorsBytes, f32, rangeText, type CoreSpec, type InitialState } from '../vectors/core.js';
import { edgeSuite } from '../vectors/suite.js';
import { CANDIDATES, H0, layerGrad, layerGradBytes, MAX_FD_ERROR, NEGLIGIBLE, type LayerGrad } from '../vectors/layer-grad.js';
import { initLayerWeights, paramCount, writeLayerWeights } from './init.js';

export const usage = `usage: momlab vectors --config cfg.json [--weights w.safetensors] [--batch B] [--tokens T] --seed S --out DIR [core options] [--force]
       momlab vectors --rule NAME|FILE.rule [--batch B --tokens T | --lengths L1,L2,...] [sizes] --seed S --out DIR [core options] [--force]
       momlab vectors --suite edge [--rule NAME|FILE.rule] [sizes] --seed S --out DIR [core options] [--force]

Write golden vectors computed by the float64 reference into DIR:
  inputs.safetensors    core.* (q, router logits, each memory's inputs) and layer.hidden_states
  weights.safetensors   the layer weights under fla's state-dict names (--weights, or random from --seed)
  expected.safetensors  core.o, core.final_state.*, layer.y, layer.router_logits, layer.final_state.*,
                        layer.conv_cache.{q,k,v}.* (the last conv_size-1 conv inputs per memory)
  manifest.json         config, seed, shapes, SHA-256 of inputs and expected, how the values were computed
--config writes the core (gated-delta, the config's sizes) and the layer; --rule writes the core form
of any rule alone (its own inputs, fla's layout); --suite edge writes one such folder per hard case
under DIR, with DIR/index.json listing them (docs/vectors.md).
Core options:
  --mix after|before          read-out after or before mixing the memories     (default after)
  --initial-state zero|random a random initial state is written as core.h0.*   (default zero)
  --grad                      also random upstream gradients (core.do, core.dht.*) and the reference
                              backward's gradients (core.dq, core.d<input>.*, core.drouter_logits,
                              core.dh0.*): built-in rules only. With --config also the layer's:
                              inputs layer.dy [B, T, D] (upstream gradient of layer.y) and a random
                              direction layer.dir.<X> per X = hidden_states and each weight (X's
                              shape); expected layer.jvp.<X> [1] = <dL/dX, layer.dir.<X>> for
                              L = sum(layer.dy * layer.y), by finite differences of the reference
                              (error in manifest.json layer_grad); compare sum(grad_X * dir) in float64
Sizes (--rule, --suite): --heads H (2) --memories E (4) --topk K (2) --dk D (16) --dv D (16) --no-shared
  --lengths L1,L2,...         a variable-length batch: B = 1, the sequences concatenated along T and
                              core.cu_seqlens; each runs from its own initial state. With --config
                              the layer gets them left-padded to the longest, with
                              layer.attention_mask [B, T] (fla's: 1 a token, 0 padding; y is 0 there)
Defaults: --batch 2 --tokens 37 (not a multiple of any chunk size). Files already in DIR are
replaced only with --force, and never when they are an input (--config, --weights).
Refused: a value that is not finite in float32 (e.g. weights scaled by 1e30), naming the tensor.`;

export interface VectorOptions {
  config: LayerConfig;
  weights: LayerWeights;
  B: number;
  T: number;
  seed: number;
  mix?: RouteMix;
  initial?: InitialState;
  grad?: boolean;
  /** a variable-length batch: sequence b holds the last lengths[b] of its T positions (left padding) */
  lengths?: number[];
}

export interface Vectors {
  inputs: Record<string, TensorIn>;
  expected: Record<string, TensorIn>;
  coreConfig: CoreConfig;
  /** with grad: the layer gradients' per-tensor report (jvp, error estimate, step) and the tensors left out */
  layerGrad?: Pick<LayerGrad, 'report' | 'skipped'>;
}

/** Standard-normal hidden states (Box-Muller over mulberry32), like the RMS-normalised input a layer sees. */
export function sampleHiddenStates(n: number, seed: number): Float64Array {
  const rand = mulberry32(seed);
  const x = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rand()));
    const a = 2 * Math.PI * rand();
    x[i] = r * Math.cos(a);
    if (i + 1 < n) x[i + 1] = r * Math.sin(a);
  }
  return x;
}

/** Split [E, B, H, dk, dv] states into one [B, H, dk, dv] tensor per memory. */
function perMemory(prefix: string, routed: Float64Array, shared: Float64Array | null, E: number, shape: number[]): Record<string, TensorIn> {
  const size = shape.reduce((a, b) => a * b, 1);
  const out: Record<string, TensorIn> = {};
  for (let e = 0; e < E; e++) out[`${prefix}.${e}`] = { shape, data: routed.subarray(e * size, (e + 1) * size) };
  if (shared) out[`${prefix}.shared`] = { shape, data: shared };
  return out;
}

/**
 * The layer's conv caches (docs/spec.md §7), one tensor per projection and slot (memory e, or `shared`):
 * `layer.conv_cache.{q,k,v}.{slot}` [B, C, W-1], C = H·dk (q, k) or H·dv (v) in the projection's
 * channel order, the last W-1 conv *inputs* (projection outputs before the conv), oldest first
 * — fla's `[N, D, W]` conv-state layout without its oldest column (fla keeps W inputs, momlab the
 * W-1 the next token needs). None when conv_size is 1 (no history).
 */
function convCaches(conv: { q: Float64Array; k: Float64Array; v: Float64Array }, E: number, shared: boolean, B: number, C: { q: number; k: number; v: number }, W: number): Record<string, TensorIn> {
  const out: Record<string, TensorIn> = {};
  if (W === 1) return out;
  const slots = [...Array.from({ length: E }, (_, e) => String(e)), ...(shared ? ['shared'] : [])];
  for (const which of ['q', 'k', 'v'] as const) {
    const size = B * C[which] * (W - 1);
    slots.forEach((slot, i) => (out[`layer.conv_cache.${which}.${slot}`] = { shape: [B, C[which], W - 1], data: conv[which].subarray(i * size, (i + 1) * size) }));
  }
  return out;
}

export function makeVectors(o: VectorOptions): Vectors {
  const { config: c, B, T, seed } = o;
  const { D, H, dk, dv, E, W } = layerDims(c);
  const coreConfig: CoreConfig = { B, T, H, E, topk: c.topk, dk, dv, shared: c.shared_mem };
  // Inputs and weights are stored as F32: round them first, so that the expected values are the
  // float64 result on exactly the numbers in the files (a unit key stays unit within 1e-7).
  // With lengths the core is fla's varlen form (B = 1, the sequences end to end, cu_seqlens).
  const coreSpec = o.lengths
    ? { cfg: { ...coreConfig, B: 1, T: o.lengths.reduce((a, b) => a + b, 0) }, lengths: o.lengths }
    : { cfg: coreConfig };
  const core = coreVectors(getRule('gated-delta'), { ...coreSpec, mix: o.mix ?? 'after', initial: o.initial ?? 'zero', grad: o.grad ?? false }, seed);
  const hidden = f32(sampleHiddenStates(B * T * D, seed ^ 0x5eed));
  const round = (m: Record<string, Float64Array>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, f32(v)]));
  const weights = round(o.weights);
  const layer = o.lengths ? paddedLayer(c, weights, hidden, T, o.lengths) : layerForward(c, weights, hidden, B, T);
  const inputs: Record<string, TensorIn> = { ...core.inputs, 'layer.hidden_states': { shape: [B, T, D], data: hidden } };
  if (o.lengths) inputs['layer.attention_mask'] = { shape: [B, T], data: Float64Array.from({ length: B * T }, (_, i) => (i % T >= T - o.lengths![Math.floor(i / T)] ? 1 : 0)) };
  const expected: Record<string, TensorIn> = {
    ...core.expected,
    'layer.y': { shape: [B, T, D], data: layer.y },
    'layer.router_logits': { shape: [B, T, E], data: layer.logits },
    ...perMemory('layer.final_state', layer.final.routed, layer.final.shared, E, [B, H, dk, dv]),
    ...convCaches(layer.final.conv, E, c.shared_mem, B, { q: H * dk, k: H * dk, v: H * dv }, W),
  };
  if (!o.grad) return { inputs, expected, coreConfig };
  const grad = layerGrad({ config: c, weights, hidden, B, T, lengths: o.lengths }, seed);
  return { inputs: { ...inputs, ...grad.inputs }, expected: { ...expected, ...grad.expected }, coreConfig, layerGrad: { report: grad.report, skipped: grad.skipped } };
}

/**
 * The layer over a left-padded batch (fla's `attention_mask`, 1 for a token, 0 for padding): each
 * sequence runs alone over its own tokens, so padding is routed nowhere, enters no conv history and
 * moves no memory; y is 0 at padding (fla zero-fills the mixed output there before o_norm and
 * o_proj, which keep 0 at 0). Router logits are the gate's on every position, padding included.
 */
function paddedLayer(c: LayerConfig, w: LayerWeights, x: Float64Array, T: number, lengths: number[]) {
  const { D, H, dk, dv, E, W } = layerDims(c);
  const B = lengths.length;
  const per = H * dk * dv;
  const slots = E + (c.shared_mem ? 1 : 0);
  const width = { q: H * dk, k: H * dk, v: H * dv };
  const y = new Float64Array(B * T * D);
  const logits = new Float64Array(B * T * E);
  const gate = w['gate.weight'];
  for (let p = 0; p < B * T; p++)
    for (let e = 0; e < E; e++) {
      let z = 0;
      for (let d = 0; d < D; d++) z += x[p * D + d] * gate[e * D + d];
      logits[p * E + e] = z;
    }
  const final = {
    routed: new Float64Array(E * B * per),
    shared: c.shared_mem ? new Float64Array(B * per) : null,
    conv: { q: new Float64Array(slots * B * width.q * (W - 1)), k: new Float64Array(slots * B * width.k * (W - 1)), v: new Float64Array(slots * B * width.v * (W - 1)) },
  };
  lengths.forEach((L, b) => {
    const start = b * T + T - L;
    const r = layerForward(c, w, x.subarray(start * D, (b + 1) * T * D), 1, L);
    y.set(r.y, start * D);
    for (let e = 0; e < E; e++) final.routed.set(r.final.routed.subarray(e * per, (e + 1) * per), (e * B + b) * per);
    if (final.shared) final.shared.set(r.final.shared!, b * per);
    for (const which of ['q', 'k', 'v'] as const) {
      const n = width[which] * (W - 1);
      for (let m = 0; m < slots; m++) final.conv[which].set(r.final.conv[which].subarray(m * n, (m + 1) * n), (m * B + b) * n);
    }
  });
  return { y, logits, final };
}

const listing = (t: Record<string, TensorIn>) => Object.entries(t).map(([name, { shape }]) => ({ name, shape: [...shape] }));

/**
 * What makeVectors allocates, as float64: the weights (and their float32-rounded copy and file),
 * the core problem, and the layer's per-token projections, conv outputs and gates per memory slot
 * (x2 headroom for temporaries).
 */
export function vectorsBytes(c: LayerConfig, B: number, T: number, core: CoreSpec): number {
  const { D, H, dk, dv, E } = layerDims(c);
  const slots = E + 1;
  const perToken = 3 * D + 2 * E + slots * (3 * H * (2 * dk + dv) + 2 * H) + 3 * H * dv;
  return 20 * paramCount(c) + coreVectorsBytes(getRule('gated-delta'), core) + 2 * 8 * (B * T * perToken + 2 * slots * B * H * dk * dv) + (core.grad ? layerGradBytes(c, B, T) : 0);
}

/** Refuse a tensor that float32 cannot hold (it would be written as Inf or NaN), naming it. */
function checkFinite(group: string, tensors: Record<string, TensorIn>): void {
  for (const [name, t] of Object.entries(tensors)) {
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(Math.fround(t.data[i]))) throw new FormatError(`momlab vectors: ${group} tensor '${name}' holds ${t.data[i]} at flat index ${i}, not a finite float32 (weights or inputs too large?); nothing was written`);
    }
  }
}

/** Run the reference, turning its refusal of the inputs into one line that says nothing was written. */
function reference<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof MomlabError) throw new FormatError(`momlab vectors: the reference cannot run on ${what}: ${e.message}; nothing was written`);
    throw e;
  }
}

const METRIC = "err = rms(ref - out) / (rms(ref) + 1e-8); a tensor passes when err <= tolerance or max|ref - out| <= 1e-6 (docs/spec.md §9)";
const TOLERANCE_NOTE = "momlab verify's own table per tensor group and precision (docs/vectors.md), not this file";
const CORE_COMPUTED =
  'float64 reference (momlab reference/), stored as float32, on exactly the float32 inputs. core: reference/mom.ts momForward, token by token (docs/spec.md §4); ' +
  'with cu_seqlens each sequence runs on its own from its own initial state (h0 [N, H, dk, dv], N sequences). ' +
  'Gradients: reference/backward momBackward for L = sum(do * o) + sum(dht * final_state), of the unscaled q, the router logits, every input and the initial state.';

/** The manifest's description of the core problem. */
function coreManifest(ruleName: string, rule: Rule, spec: CoreSpec) {
  return {
    ...spec.cfg,
    rule: ruleName,
    inputs_per_memory: rule.inputs.map((d) => ({ name: d.name, width: d.width, range: rangeText(d.range) })),
    scale: spec.cfg.dk ** -0.5,
    mix: spec.mix,
    initial_state: spec.initial,
    ...(spec.lengths ? { cu_seqlens: spec.lengths.reduce((a, l) => [...a, a[a.length - 1] + l], [0]) } : {}),
    grad: spec.grad,
    q_scaled: false,
  };
}

/**
 * One vectors folder: the safetensors files, `more` (the weights, for --config), and last the manifest
 * with their SHA-256 — after the finiteness checks, so that a refusal writes nothing.
 */
async function writeFolder(dir: string, v: { inputs: Record<string, TensorIn>; expected: Record<string, TensorIn> }, manifest: Record<string, unknown>, more?: () => Promise<void>): Promise<void> {
  checkFinite('input', v.inputs);
  checkFinite('expected', v.expected);
  const inputs = serializeSafetensors(v.inputs, { format: 'pt' });
  const expected = serializeSafetensors(v.expected, { format: 'pt' });
  const full = {
    format: 'momlab-vectors/2',
    ...manifest,
    sha256: { 'inputs.safetensors': sha256(inputs), 'expected.safetensors': sha256(expected) },
    metric: METRIC,
    tolerance: TOLERANCE_NOTE,
    inputs: listing(v.inputs),
    expected: listing(v.expected),
  };
  await mkdir(dir, { recursive: true });
  await writeAtomic(join(dir, 'inputs.safetensors'), inputs);
  await writeAtomic(join(dir, 'expected.safetensors'), expected);
  await more?.();
  await writeAtomic(join(dir, 'manifest.json'), JSON.stringify(full, null, 2) + '\n');
}

const SPEC = {
  config: 'string', weights: 'string', rule: 'string', suite: 'string', batch: 'number', tokens: 'number', lengths: 'string',
  heads: 'number', memories: 'number', topk: 'number', dk: 'number', dv: 'number', shared: 'boolean',
  mix: 'string', 'initial-state': 'string', grad: 'boolean', seed: 'number', out: 'string', force: 'boolean',
} as const;

function int(flags: Record<string, unknown>, name: string, dflt: number, max: number, min = 1): number {
  const v = (flags[name] as number | undefined) ?? dflt;
  if (!Number.isInteger(v) || v < min || v > max) throw new ConfigError(`momlab vectors: --${name} must be an integer in ${min}..${max}, got ${v}`);
  return v;
}

function choice<T extends string>(flags: Record<string, unknown>, name: string, options: readonly T[]): T {
  const v = (flags[name] as string | undefined) ?? options[0];
  if (!options.includes(v as T)) throw new ConfigError(`momlab vectors: --${name} must be one of ${options.join(', ')}, got '${v}'`);
  return v as T;
}

/** --lengths 5,64,1: positive token counts, at most 64 sequences. */
function parseLengths(text: string): number[] {
  const parts = text.split(',');
  const lengths = parts.map((p) => (/^\s*\d+\s*$/.test(p) ? Number(p) : NaN));
  if (parts.length > 64 || lengths.some((l) => !(l >= 1 && l <= 4096)))
    throw new ConfigError(`momlab vectors: --lengths needs 1 to 64 comma-separated token counts in 1..4096, got '${text}'`);
  return lengths;
}

export async function run(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { flags } = parseArgs(argv, SPEC, 'vectors');
  for (const f of ['seed', 'out'] as const) if (flags[f] === undefined) throw new ConfigError(`momlab vectors: --${f} is required (see momlab vectors --help)`);
  const modes = (['config', 'rule', 'suite'] as const).filter((m) => flags[m] !== undefined);
  if (modes.length === 0) throw new ConfigError('momlab vectors: give --config (layer and core vectors), --rule (core vectors of any rule) or --suite edge (see momlab vectors --help)');
  if (flags.config !== undefined && modes.length > 1) throw new ConfigError(`momlab vectors: --config writes the gated-delta core and the layer; it does not combine with --${modes[1]}`);
  if (flags.suite !== undefined && flags.suite !== 'edge') throw new ConfigError(`momlab vectors: --suite must be 'edge', got '${flags.suite}'`);
  const seed = flags.seed as number;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new ConfigError(`momlab vectors: --seed must be an integer in 0..2^32-1, got ${seed}`);
  const core = { mix: choice(flags, 'mix', ['after', 'before'] as const), initial: choice(flags, 'initial-state', ['zero', 'random'] as const), grad: flags.grad === true };
  const dir = flags.out as string;
  const dirStat = await stat(dir).catch(() => null);
  if (dirStat && !dirStat.isDirectory()) throw new ConfigError(`momlab vectors: --out '${dir}' exists and is not a directory (--out names the directory to write the vectors into)`);
  const policy = { force: flags.force === true, inputs: [flags.config, flags.weights, flags.rule].filter((f): f is string => typeof f === 'string') };
  if (flags.config !== undefined) {
    for (const f of ['heads', 'memories', 'topk', 'dk', 'dv', 'shared'] as const)
      if (flags[f] !== undefined) throw new ConfigError(`momlab vectors: --${f} is for --rule and --suite; with --config the sizes come from the config`);
    return writeConfigVectors(flags, core, seed, dir, policy, ctx);
  }
  if (flags.weights !== undefined) throw new ConfigError('momlab vectors: --weights is for --config (the layer); the core vectors have no weights');
  const ruleSpec = (flags.rule as string | undefined) ?? 'gated-delta';
  const target = await resolveRule(ruleSpec, 'vectors');
  checkInputNames(target.ref);
  if (core.grad && !hasBackward(target.ref))
    throw new ConfigError(`momlab vectors: --grad needs a rule with a reference backward (the built-ins: ${RULE_NAMES.join(', ')}); '${ruleSpec}' has none`);
  const E = int(flags, 'memories', 4, 64);
  const cfg: CoreConfig = { B: 2, T: 37, H: int(flags, 'heads', 2, 64), E, topk: int(flags, 'topk', 2, E), dk: int(flags, 'dk', 16, 256), dv: int(flags, 'dv', 16, 256), shared: flags.shared !== false };
  const lengths = flags.lengths !== undefined ? parseLengths(flags.lengths as string) : undefined;
  if (lengths && (flags.batch !== undefined || flags.tokens !== undefined)) throw new ConfigError('momlab vectors: --lengths sets the batch (B = 1, T = the sum); leave out --batch and --tokens');
  if (lengths && flags.suite !== undefined) throw new ConfigError('momlab vectors: --suite edge has its own variable-length case; leave out --lengths');
  cfg.B = lengths ? 1 : int(flags, 'batch', 2, 64);
  cfg.T = lengths ? lengths.reduce((a, b) => a + b, 0) : int(flags, 'tokens', 37, 4096);
  if (cfg.T > 4096 * 64) throw new ConfigError(`momlab vectors: --lengths add up to ${cfg.T} tokens, over 262144`);
  const base: CoreSpec = { cfg, lengths, ...core };
  const about = { rule: ruleSpec, seed };
  if (flags.suite === undefined) {
    await checkOutputs(['inputs.safetensors', 'expected.safetensors', 'manifest.json'].map((f) => join(dir, f)), policy, 'vectors');
    checkMemory(ctx, 'vectors', `core vectors for B = ${cfg.B}, T = ${cfg.T}`, coreVectorsBytes(target.ref, base));
    const v = reference('these inputs', () => coreVectors(target.ref, base, seed));
    await writeFolder(dir, v, { ...about, batch: cfg.B, tokens: cfg.T, core: coreManifest(ruleSpec, target.ref, base), computed: CORE_COMPUTED });
    ctx.stdout.write(`wrote ${dir}: ${Object.keys(v.inputs).length} input tensors, ${Object.keys(v.expected).length} expected tensors (rule ${ruleSpec}, B=${cfg.B}, T=${cfg.T}, seed ${seed})\n`);
    return 0;
  }
  const suite = edgeSuite(target.ref, base, seed);
  await checkOutputs([join(dir, 'index.json'), ...suite.cases.flatMap((c) => ['inputs.safetensors', 'expected.safetensors', 'manifest.json'].map((f) => join(dir, c.name, f)))], policy, 'vectors');
  // one case is in memory at a time: the largest decides
  checkMemory(ctx, 'vectors', 'the edge suite', Math.max(...suite.cases.map((c) => coreVectorsBytes(target.ref, c.spec))));
  for (const c of suite.cases) {
    const v = reference(`edge case '${c.name}'`, () => coreVectors(target.ref, c.spec, seed, c.edit));
    await writeFolder(join(dir, c.name), v, { ...about, case: c.name, what: c.what, batch: c.spec.cfg.B, tokens: c.spec.cfg.T, core: coreManifest(ruleSpec, target.ref, c.spec), computed: CORE_COMPUTED });
  }
  const index = {
    format: 'momlab-vectors-suite/1',
    suite: 'edge',
    ...about,
    mix: core.mix,
    initial_state: core.initial,
    grad: core.grad,
    cases: suite.cases.map((c) => ({ name: c.name, what: c.what, dir: c.name, B: c.spec.cfg.B, T: c.spec.cfg.T, H: c.spec.cfg.H, E: c.spec.cfg.E, topk: c.spec.cfg.topk, dk: c.spec.cfg.dk, dv: c.spec.cfg.dv, shared: c.spec.cfg.shared, ...(c.spec.lengths ? { lengths: c.spec.lengths } : {}) })),
    skipped: suite.skipped,
    verify: `momlab verify --vectors ${dir} --outputs OUTDIR (OUTDIR/<case>.safetensors for each case)`,
  };
  await writeAtomic(join(dir, 'index.json'), JSON.stringify(index, null, 2) + '\n');
  ctx.stdout.write(`wrote ${dir}: ${suite.cases.length} edge cases (${suite.cases.map((c) => c.name).join(', ')}) and index.json (rule ${ruleSpec}, seed ${seed})\n`);
  return 0;
}

/** The manifest's account of the layer gradients: L, the method, and the worst estimated error. */
function layerGradManifest({ report, skipped }: Pick<LayerGrad, 'report' | 'skipped'>) {
  const worst = report.reduce((a, r) => (r.relError > a.relError ? r : a), report[0]);
  return {
    loss: 'L = sum(layer.dy * layer.y)',
    method:
      `layer.jvp.<X> = <dL/dX, layer.dir.<X>> for X = hidden_states and every weight: central differences D(h) = (f(h) - f(-h)) / 2h of the float64 layer forward, ` +
      `Richardson R(h) = (4 D(h/2) - D(h)) / 3, value R(h/2), error estimate |R(h) - R(h/2)|; h = ${H0} * rms(X) / rms(dir), halved while the top-k selection changes within +-h; ` +
      `dir: of ${CANDIDATES} seeded uniform (-1, 1) draws the one with the largest |jvp| (no cancelled sums); refused when an estimate exceeds ${MAX_FD_ERROR} relative (after steps h/4, h/16 and 4h are tried); ` +
      `a jvp that moves L by under ${NEGLIGIBLE} of sum|dy * y| (rounding: y does not depend on the tensor) is not written (skipped)`,
    worst_fd_error: worst?.relError ?? 0,
    worst_fd_error_tensor: worst ? `layer.jvp.${worst.name}` : null,
    skipped,
    fd_error: Object.fromEntries(report.map((r) => [`layer.jvp.${r.name}`, r.relError])),
    compare: 'sum over the tensor of (autograd gradient * layer.dir.<X>) in float64; momlab verify judges layer.jvp.* on the error ratio alone (no 1e-6 absolute pass)',
  };
}

/** --config: the gated-delta core with the config's sizes, and the layer with its weights. */
async function writeConfigVectors(flags: Record<string, unknown>, core: Omit<CoreSpec, 'cfg'>, seed: number, dir: string, policy: { force: boolean; inputs: string[] }, ctx: CliContext): Promise<number> {
  const lengths = flags.lengths !== undefined ? parseLengths(flags.lengths as string) : undefined;
  if (lengths && (flags.batch !== undefined || flags.tokens !== undefined)) throw new ConfigError('momlab vectors: --lengths sets the batch (B = the count, T = the longest, left-padded); leave out --batch and --tokens');
  const B = lengths ? lengths.length : int(flags, 'batch', 2, 64);
  const T = lengths ? Math.max(...lengths) : int(flags, 'tokens', 37, 4096);
  await checkOutputs(['inputs.safetensors', 'expected.safetensors', 'weights.safetensors', 'manifest.json'].map((f) => join(dir, f)), policy, 'vectors');
  const config = await readLayerConfig(flags.config as string);
  const { H, dk, dv, E } = layerDims(config);
  const cfg = { B, T, H, E, topk: config.topk, dk, dv, shared: config.shared_mem };
  const spec: CoreSpec = lengths ? { cfg: { ...cfg, B: 1, T: lengths.reduce((a, b) => a + b, 0) }, lengths, ...core } : { cfg, ...core };
  checkMemory(ctx, 'vectors', `vectors for B = ${B}, T = ${T} and this config (${paramCount(config)} parameters)`, vectorsBytes(config, B, T, spec));
  const weights = flags.weights ? layerWeightsFrom(await readSafetensors(flags.weights as string, { maxMemory: ctx.maxMemory }), config) : initLayerWeights(config, seed);
  checkFinite('weights', Object.fromEntries(Object.entries(weights).map(([n, data]) => [n, { shape: [data.length], data }])));
  const v = reference('these inputs and weights', () => makeVectors({ config, weights, B, T, seed, lengths, ...core }));
  await writeFolder(dir, v, {
    config,
    seed,
    batch: B,
    tokens: T,
    ...(lengths ? { lengths, padding: 'left: layer.attention_mask [B, T] is 1 on the last lengths[b] positions of row b; the core is varlen (core.cu_seqlens)' } : {}),
    weights: flags.weights ? `from ${flags.weights}` : `momlab init --seed ${seed} (fla initialisation rules)`,
    core: { ...coreManifest('gated-delta', getRule('gated-delta'), spec), k_normalized: true },
    computed:
      CORE_COMPUTED + ' layer: reference/layer.ts layerForward, gathered form, gated delta rule token by token (docs/spec.md §6), from zero states. ' +
      'layer.conv_cache.{q,k,v}.{slot} [B, C, conv_size-1]: the last conv_size-1 inputs of that memory\'s short conv (projection outputs before the conv), oldest first; ' +
      "fla's conv state [B, C, conv_size] holds one more (its oldest column): compare its [..., 1:]; momlab verify does so when given the wider tensor.",
    ...(v.layerGrad ? { layer_grad: layerGradManifest(v.layerGrad) } : {}),
  }, () => writeLayerWeights(join(dir, 'weights.safetensors'), config, weights));
  ctx.stdout.write(`wrote ${dir}: ${Object.keys(v.inputs).length} input tensors, ${Object.keys(v.expected).length} expected tensors (B=${B}, T=${T}, seed ${seed})\n`);
  return 0;
}
