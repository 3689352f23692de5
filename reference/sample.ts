/**
 * Seeded sample inputs for the core form: deterministic across machines (integer PRNG, no
 * Math.random), never all zero, and respecting each input's declared range (InputDecl).
 */
import type { CoreConfig, CoreInputs, InputDecl, MemoryInputs, Rule } from './types.js';
import { intervalSpan, widthOf } from './types.js';
import { validateConfig } from './validate.js';

/** mulberry32: a small 32-bit PRNG; returns numbers in [0, 1) with 2^-32 resolution. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Strictly inside (0, 1): (m + 1/2) / 2^32. Then 2u - 1 has an odd numerator over 2^32 and is
 * never exactly 0, so no sampled vector is ever all zeros.
 */
function open01(rand: () => number): () => number {
  return () => (Math.floor(rand() * 4294967296) + 0.5) / 4294967296;
}

/** One memory input [B, T, H, width] in the declared range. */
function sampleInput(u: () => number, d: InputDecl, cfg: CoreConfig): Float64Array {
  const w = widthOf(d.width, cfg);
  const vectors = cfg.B * cfg.T * cfg.H;
  const a = new Float64Array(vectors * w);
  for (let i = 0; i < a.length; i++) {
    const r = u();
    if (d.range === 'logdecay') a[i] = -0.01 - 1.99 * r; // g in [-2, -0.01]: α = e^g in [0.135, 0.99]
    else if (d.range === 'unit') a[i] = 0.05 + 0.9 * r; // (0.05, 0.95)
    else if (typeof d.range === 'object') {
      const [lo, hi] = intervalSpan(d.range);
      a[i] = lo + (hi - lo) * r;
    }
    else a[i] = 2 * r - 1; // free, normalized: (-1, 1), never exactly 0
  }
  if (d.range === 'normalized')
    // Unit l2 norm per [b, t, h] vector (the delta rules need ‖k‖ = 1, docs/spec.md §3).
    for (let p = 0; p < vectors; p++) {
      let ss = 0;
      for (let i = 0; i < w; i++) ss += a[p * w + i] ** 2;
      const inv = 1 / Math.sqrt(ss); // ss > 0: no entry is 0
      for (let i = 0; i < w; i++) a[p * w + i] *= inv;
    }
  return a;
}

/**
 * Inputs for `rule` under `cfg` from `seed`: q (unscaled; momForward applies s) and memory
 * inputs in (-1, 1) or their declared range, router logits in (-2, 2).
 */
export function sampleCoreInputs(rule: Rule, cfg: CoreConfig, seed: number): CoreInputs {
  validateConfig(cfg);
  const u = open01(mulberry32(seed));
  const { B, T, H, E, dk } = cfg;
  const q = Float64Array.from({ length: B * T * H * dk }, () => 2 * u() - 1);
  const logits = Float64Array.from({ length: B * T * E }, () => 4 * u() - 2);
  const memory = (): MemoryInputs => Object.fromEntries(rule.inputs.map((d) => [d.name, sampleInput(u, d, cfg)]));
  const memories = Array.from({ length: E }, memory);
  const shared = cfg.shared ? memory() : null;
  return { q, logits, memories, shared };
}

/** A 32-bit seed for token (b, t) of a stream seeded by `seed`: distinct streams, no shared prefix. */
function tokenSeed(seed: number, b: number, t: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 1, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 15), 0xc2b2ae35) ^ Math.imul(t + 1, 0x165667b1);
  return (h ^ (h >>> 13)) >>> 0;
}

/**
 * Like sampleCoreInputs, but every token (b, t) draws from its own stream: token t's inputs do not
 * depend on T, so a longer trace keeps the beginning of a shorter one (the trace and the learn page use it).
 */
export function sampleTokenwise(rule: Rule, cfg: CoreConfig, seed: number): CoreInputs {
  validateConfig(cfg);
  const { B, T, H, E, dk } = cfg;
  const one: CoreConfig = { ...cfg, B: 1, T: 1 };
  const x: CoreInputs = {
    q: new Float64Array(B * T * H * dk),
    logits: new Float64Array(B * T * E),
    memories: Array.from({ length: E }, () => Object.fromEntries(rule.inputs.map((d) => [d.name, new Float64Array(B * T * H * widthOf(d.width, cfg))]))),
    shared: cfg.shared ? Object.fromEntries(rule.inputs.map((d) => [d.name, new Float64Array(B * T * H * widthOf(d.width, cfg))])) : null,
  };
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      const bt = b * T + t;
      const y = sampleCoreInputs(rule, one, tokenSeed(seed, b, t));
      x.q.set(y.q, bt * H * dk);
      x.logits.set(y.logits, bt * E);
      const place = (to: MemoryInputs, from: MemoryInputs) => {
        for (const d of rule.inputs) to[d.name].set(from[d.name], bt * H * widthOf(d.width, cfg));
      };
      y.memories.forEach((m, e) => place(x.memories[e], m));
      if (x.shared) place(x.shared, y.shared as MemoryInputs);
    }
  return x;
}
