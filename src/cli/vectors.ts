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
import { momForward } from '../../reference/mom.js';
import { getRule } from '../../reference/rules/index.js';
import { mulberry32, sampleCoreInputs } from '../../reference/sample.js';
import type { CoreConfig } from '../../reference/types.js';
import { layerForward } from '../../reference/layer.js';
import { layerDims, type LayerConfig, type LayerWeights } from '../../reference/layer-config.js';
import { layerWeightsFrom, readLayerConfig } from '../io/layer-files.js';
import { checkOutputs, sha256, writeAtomic } from '../io/files.js';
import { readSafetensors, serializeSafetensors, type TensorIn } from '../io/safetensors.js';
import { checkMemory, coreBytes, processContext, type CliContext } from './context.js';
import { initLayerWeights, paramCount, writeLayerWeights } from './init.js';

export const usage = `usage: momlab vectors --config cfg.json [--weights w.safetensors] [--batch B] [--tokens T] --seed S --out DIR [--force]

Write golden vectors computed by the float64 reference into DIR:
  inputs.safetensors    core.* (q, k, v, g, beta per memory, router logits) and layer.hidden_states
  weights.safetensors   the layer weights under fla's state-dict names (--weights, or random from --seed)
  expected.safetensors  core.o, core.final_state.*, layer.y, layer.router_logits, layer.final_state.*,
                        layer.conv_cache.{q,k,v}.* (the last conv_size-1 conv inputs per memory)
  manifest.json         config, seed, shapes, SHA-256 of inputs and expected, how the values were computed
Defaults: --batch 2 --tokens 37 (not a multiple of any chunk size). Files already in DIR are
replaced only with --force, and never when they are an input (--config, --weights).
Refused: a value that is not finite in float32 (e.g. weights scaled by 1e30), naming the tensor.`;

export interface VectorOptions {
  config: LayerConfig;
  weights: LayerWeights;
  B: number;
  T: number;
  seed: number;
}

export interface Vectors {
  inputs: Record<string, TensorIn>;
  expected: Record<string, TensorIn>;
  coreConfig: CoreConfig;
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

const f32 = (a: Float64Array): Float64Array => a.map(Math.fround);

export function makeVectors(o: VectorOptions): Vectors {
  const { config: c, B, T, seed } = o;
  const { D, H, dk, dv, E, W } = layerDims(c);
  const rule = getRule('gated-delta');
  const coreConfig: CoreConfig = { B, T, H, E, topk: c.topk, dk, dv, shared: c.shared_mem };
  // Inputs and weights are stored as F32: round them first, so that the expected values are the
  // float64 result on exactly the numbers in the files (a unit key stays unit within 1e-7).
  const round = (m: Record<string, Float64Array>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, f32(v)]));
  const s = sampleCoreInputs(rule, coreConfig, seed);
  const x = { q: f32(s.q), logits: f32(s.logits), memories: s.memories.map(round), shared: s.shared ? round(s.shared) : null };
  const core = momForward(rule, coreConfig, x);
  const hidden = f32(sampleHiddenStates(B * T * D, seed ^ 0x5eed));
  const layer = layerForward(c, round(o.weights), hidden, B, T);

  const bth = [B, T, H];
  const inputs: Record<string, TensorIn> = { 'core.q': { shape: [B, T, H, dk], data: x.q }, 'core.router_logits': { shape: [B, T, E], data: x.logits } };
  const mems = x.memories.map((m, e) => [String(e), m] as const);
  if (x.shared) mems.push(['shared', x.shared]);
  for (const [e, m] of mems) {
    inputs[`core.k.${e}`] = { shape: [B, T, H, dk], data: m.k };
    inputs[`core.v.${e}`] = { shape: [B, T, H, dv], data: m.v };
    inputs[`core.g.${e}`] = { shape: bth, data: m.g };
    inputs[`core.beta.${e}`] = { shape: bth, data: m.beta };
  }
  inputs['layer.hidden_states'] = { shape: [B, T, D], data: hidden };
  const expected: Record<string, TensorIn> = {
    'core.o': { shape: [B, T, H, dv], data: core.o },
    ...perMemory('core.final_state', core.final.routed, core.final.shared, E, [B, H, dk, dv]),
    'layer.y': { shape: [B, T, D], data: layer.y },
    'layer.router_logits': { shape: [B, T, E], data: layer.logits },
    ...perMemory('layer.final_state', layer.final.routed, layer.final.shared, E, [B, H, dk, dv]),
    ...convCaches(layer.final.conv, E, c.shared_mem, B, { q: H * dk, k: H * dk, v: H * dv }, W),
  };
  return { inputs, expected, coreConfig };
}

const listing = (t: Record<string, TensorIn>) => Object.entries(t).map(([name, { shape }]) => ({ name, shape: [...shape] }));

/**
 * What makeVectors allocates, as float64: the weights (and their float32-rounded copy and file),
 * the core problem, and the layer's per-token projections, conv outputs and gates per memory slot
 * (x2 headroom for temporaries).
 */
export function vectorsBytes(c: LayerConfig, B: number, T: number): number {
  const { D, H, dk, dv, E } = layerDims(c);
  const slots = E + 1;
  const perToken = 3 * D + 2 * E + slots * (3 * H * (2 * dk + dv) + 2 * H) + 3 * H * dv;
  return 20 * paramCount(c) + coreBytes({ B, T, H, E, dk, dv }) + 2 * 8 * (B * T * perToken + 2 * slots * B * H * dk * dv);
}

/** Refuse a tensor that float32 cannot hold (it would be written as Inf or NaN), naming it. */
function checkFinite(group: string, tensors: Record<string, TensorIn>): void {
  for (const [name, t] of Object.entries(tensors)) {
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(Math.fround(t.data[i]))) throw new FormatError(`momlab vectors: ${group} tensor '${name}' holds ${t.data[i]} at flat index ${i}, not a finite float32 (weights or inputs too large?); nothing was written`);
    }
  }
}

export async function run(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { flags } = parseArgs(argv, { config: 'string', weights: 'string', batch: 'number', tokens: 'number', seed: 'number', out: 'string', force: 'boolean' }, 'vectors');
  for (const f of ['config', 'seed', 'out'] as const) if (flags[f] === undefined) throw new ConfigError(`momlab vectors: --${f} is required (see momlab vectors --help)`);
  const B = (flags.batch as number | undefined) ?? 2;
  const T = (flags.tokens as number | undefined) ?? 37;
  const seed = flags.seed as number;
  for (const [name, v, max] of [['batch', B, 64], ['tokens', T, 4096]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > max) throw new ConfigError(`momlab vectors: --${name} must be an integer in 1..${max}, got ${v}`);
  }
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new ConfigError(`momlab vectors: --seed must be an integer in 0..2^32-1, got ${seed}`);
  const dir = flags.out as string;
  const dirStat = await stat(dir).catch(() => null);
  if (dirStat && !dirStat.isDirectory()) throw new ConfigError(`momlab vectors: --out '${dir}' exists and is not a directory (--out names the directory to write the vectors into)`);
  const paths = { inputs: join(dir, 'inputs.safetensors'), expected: join(dir, 'expected.safetensors'), weights: join(dir, 'weights.safetensors'), manifest: join(dir, 'manifest.json') };
  const inputFiles = [flags.config as string, ...(flags.weights ? [flags.weights as string] : [])];
  await checkOutputs(Object.values(paths), { force: flags.force === true, inputs: inputFiles }, 'vectors');
  const config = await readLayerConfig(flags.config as string);
  checkMemory(ctx, 'vectors', `vectors for B = ${B}, T = ${T} and this config (${paramCount(config)} parameters)`, vectorsBytes(config, B, T));
  const weights = flags.weights ? layerWeightsFrom(await readSafetensors(flags.weights as string, { maxMemory: ctx.maxMemory }), config) : initLayerWeights(config, seed);
  checkFinite('weights', Object.fromEntries(Object.entries(weights).map(([n, data]) => [n, { shape: [data.length], data }])));
  let v: Vectors;
  try {
    v = makeVectors({ config, weights, B, T, seed });
  } catch (e) {
    if (e instanceof MomlabError) throw new FormatError(`momlab vectors: the reference cannot run on these inputs and weights: ${e.message}; nothing was written`);
    throw e;
  }
  checkFinite('input', v.inputs);
  checkFinite('expected', v.expected);
  const inputs = serializeSafetensors(v.inputs, { format: 'pt' });
  const expected = serializeSafetensors(v.expected, { format: 'pt' });
  const manifest = {
    format: 'momlab-vectors/2',
    config,
    seed,
    batch: B,
    tokens: T,
    weights: flags.weights ? `from ${flags.weights}` : `momlab init --seed ${seed} (fla initialisation rules)`,
    sha256: { 'inputs.safetensors': sha256(inputs), 'expected.safetensors': sha256(expected) },
    core: { ...v.coreConfig, rule: 'gated-delta', scale: v.coreConfig.dk ** -0.5, mix: 'after', q_scaled: false, k_normalized: true },
    computed:
      'float64 reference (momlab reference/), stored as float32. core: reference/mom.ts momForward, token by token (docs/spec.md §4). ' +
      'layer: reference/layer.ts layerForward, gathered form, gated delta rule token by token (docs/spec.md §6). Initial states are zero. ' +
      'layer.conv_cache.{q,k,v}.{slot} [B, C, conv_size-1]: the last conv_size-1 inputs of that memory\'s short conv (projection outputs before the conv), oldest first; ' +
      "fla's conv state [B, C, conv_size] holds one more (its oldest column): compare its [..., 1:]; momlab verify does so when given the wider tensor.",
    metric: "err = rms(ref - out) / (rms(ref) + 1e-8); a tensor passes when err <= tolerance or max|ref - out| <= 1e-6 (docs/spec.md §9)",
    tolerance: "momlab verify's own table per tensor group and precision (docs/vectors.md), not this file",
    inputs: listing(v.inputs),
    expected: listing(v.expected),
  };
  await mkdir(dir, { recursive: true });
  await writeAtomic(paths.inputs, inputs);
  await writeAtomic(paths.expected, expected);
  await writeLayerWeights(paths.weights, config, weights);
  await writeAtomic(paths.manifest, JSON.stringify(manifest, null, 2) + '\n');
  ctx.stdout.write(`wrote ${dir}: ${Object.keys(v.inputs).length} input tensors, ${Object.keys(v.expected).length} expected tensors (B=${B}, T=${T}, seed ${seed})\n`);
  return 0;
}
