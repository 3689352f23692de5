/**
 * The configuration of one MoM layer (docs/spec.md §6), with fla's `MomConfig` key names, and the layer's
 * parameters under fla's state-dict names and shapes.
 */
import { ConfigError } from './errors.js';

export interface LayerConfig {
  hidden_size: number;
  num_heads: number;
  head_dim: number;
  expand_v: number;
  num_memories: number;
  topk: number;
  shared_mem: boolean;
  single_kv_proj: boolean;
  conv_size: number;
  norm_eps: number;
}

/** fla's MomAttention defaults (fla/layers/mom.py). */
export const LAYER_DEFAULTS: LayerConfig = {
  hidden_size: 2048,
  num_heads: 4,
  head_dim: 256,
  expand_v: 2,
  num_memories: 8,
  topk: 2,
  shared_mem: false,
  single_kv_proj: false,
  conv_size: 4,
  norm_eps: 1e-5,
};

const KEYS = Object.keys(LAYER_DEFAULTS) as (keyof LayerConfig)[];

/** Derived sizes: dk = head_dim, dv = head_dim * expand_v (must be an integer). */
export interface LayerDims {
  D: number;
  H: number;
  dk: number;
  dv: number;
  E: number;
  W: number;
}

export function layerDims(c: LayerConfig): LayerDims {
  return { D: c.hidden_size, H: c.num_heads, dk: c.head_dim, dv: c.head_dim * c.expand_v, E: c.num_memories, W: c.conv_size };
}

/** Validate a parsed JSON object: unknown keys are refused by name; missing keys take fla's defaults. */
export function parseLayerConfig(json: unknown, source = 'layer config'): LayerConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(`${source}: expected a JSON object of MomConfig keys (${KEYS.join(', ')})`);
  const unknown = Object.keys(json).filter((k) => !KEYS.includes(k as keyof LayerConfig));
  if (unknown.length) throw new ConfigError(`${source}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')} (known: ${KEYS.join(', ')})`);
  const c = { ...LAYER_DEFAULTS, ...(json as Partial<LayerConfig>) };
  for (const k of ['hidden_size', 'num_heads', 'head_dim', 'num_memories', 'topk', 'conv_size'] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new ConfigError(`${source}: ${k} must be a positive integer, got ${JSON.stringify(c[k])}`);
  }
  if (typeof c.expand_v !== 'number' || !(c.expand_v > 0) || !Number.isInteger(c.head_dim * c.expand_v)) {
    throw new ConfigError(`${source}: expand_v must be positive with head_dim * expand_v an integer, got expand_v = ${JSON.stringify(c.expand_v)} (head_dim ${c.head_dim})`);
  }
  if (c.topk > c.num_memories) throw new ConfigError(`${source}: topk = ${c.topk} must satisfy 1 <= topk <= num_memories = ${c.num_memories}`);
  for (const k of ['shared_mem', 'single_kv_proj'] as const) {
    if (typeof c[k] !== 'boolean') throw new ConfigError(`${source}: ${k} must be true or false, got ${JSON.stringify(c[k])}`);
  }
  if (typeof c.norm_eps !== 'number' || !(c.norm_eps > 0) || !Number.isFinite(c.norm_eps)) throw new ConfigError(`${source}: norm_eps must be a positive number, got ${JSON.stringify(c.norm_eps)}`);
  return c;
}

/** The layer's parameters: state-dict name -> row-major values. */
export type LayerWeights = Record<string, Float64Array>;

/**
 * fla's state-dict names and shapes (docs/spec.md §6). With `single_kv_proj` every memory (and the shared
 * one) uses shared_k/v/b/a and there is no per-memory k_proj.{e}; otherwise shared_* exist only
 * with `shared_mem`, as in fla's MomAttention.__init__.
 */
export function layerParamShapes(c: LayerConfig): Record<string, number[]> {
  const { D, H, dk, dv, E, W } = layerDims(c);
  const s: Record<string, number[]> = { 'gate.weight': [E, D], 'q_proj.weight': [H * dk, D] };
  if (!c.single_kv_proj) {
    for (const [p, out] of [['k_proj', H * dk], ['v_proj', H * dv], ['b_proj', H], ['a_proj', H]] as const) {
      for (let e = 0; e < E; e++) s[`${p}.${e}.weight`] = [out, D];
    }
  }
  if (c.single_kv_proj || c.shared_mem) {
    s['shared_k.weight'] = [H * dk, D];
    s['shared_v.weight'] = [H * dv, D];
    s['shared_b.weight'] = [H, D];
    s['shared_a.weight'] = [H, D];
  }
  s.A_log = [H];
  s.dt_bias = [H];
  s['q_conv1d.weight'] = [H * dk, 1, W];
  s['k_conv1d.weight'] = [H * dk, 1, W];
  s['v_conv1d.weight'] = [H * dv, 1, W];
  s['g_proj.weight'] = [H * dv, D];
  s['o_norm.weight'] = [dv];
  s['o_proj.weight'] = [D, H * dv];
  return s;
}

/** The same check for weights built in memory (tests, init). */
export function checkLayerWeights(w: LayerWeights, c: LayerConfig): void {
  for (const [name, shape] of Object.entries(layerParamShapes(c))) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (!w[name]) throw new ConfigError(`layer weights: missing '${name}' (expected shape [${shape}])`);
    if (w[name].length !== n) throw new ConfigError(`layer weights: '${name}' has ${w[name].length} values, expected ${n} (shape [${shape}])`);
  }
}

/** Per-memory projection names: memory e's own, or the shared ones (slot e = E is the shared memory). */
export function projNames(c: LayerConfig, slot: number): { k: string; v: string; b: string; a: string } {
  if (slot === c.num_memories || c.single_kv_proj) return { k: 'shared_k.weight', v: 'shared_v.weight', b: 'shared_b.weight', a: 'shared_a.weight' };
  return { k: `k_proj.${slot}.weight`, v: `v_proj.${slot}.weight`, b: `b_proj.${slot}.weight`, a: `a_proj.${slot}.weight` };
}
