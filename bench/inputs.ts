/**
 * Benchmark inputs for gated-delta in the core form: unit-norm keys, g in [-0.2, -0.001],
 * β in (0.05, 0.95), logits in [-2, 2]. Large tensors repeat one random block of 2^20 values
 * (a multiple of every head size): host time to fill gigabytes stays small, and the kernels do
 * the same work whatever the values. All memories share the same k, v, g, β arrays (the router
 * still sends each token to its own memories): timing does not depend on which values a memory sees.
 */
import type { CoreConfig, CoreInputs, MemoryInputs } from '../reference/types.js';
import { mulberry32 } from '../reference/sample.js';

const BLOCK = 1 << 20;

/** `n` values: a random block in [lo, hi) repeated; rows of `unitRows` values normalised to 1. */
export function tiled(n: number, lo: number, hi: number, seed: number, unitRows = 0): Float64Array {
  const rand = mulberry32(seed);
  const m = Math.min(n, BLOCK);
  const block = Float64Array.from({ length: m }, () => lo + (hi - lo) * rand());
  if (unitRows > 0) {
    for (let r = 0; r + unitRows <= m; r += unitRows) {
      let ss = 0;
      for (let i = 0; i < unitRows; i++) ss += block[r + i] ** 2;
      for (let i = 0; i < unitRows; i++) block[r + i] /= Math.sqrt(ss);
    }
  }
  const out = new Float64Array(n);
  for (let o = 0; o < n; o += m) out.set(block.subarray(0, Math.min(m, n - o)), o);
  return out;
}

export function benchInputs(cfg: CoreConfig, seed: number): CoreInputs {
  const { B, T, H, E, dk, dv } = cfg;
  const mem: MemoryInputs = {
    k: tiled(B * T * H * dk, -1, 1, seed + 1, dk),
    v: tiled(B * T * H * dv, -1, 1, seed + 2),
    g: tiled(B * T * H, -0.2, -0.001, seed + 3),
    beta: tiled(B * T * H, 0.05, 0.95, seed + 4),
  };
  // logits are not tiled: the routing (and so the segment lengths) should be random per token
  const rand = mulberry32(seed + 5);
  return {
    q: tiled(B * T * H * dk, -1, 1, seed),
    logits: Float64Array.from({ length: B * T * E }, () => 4 * rand() - 2),
    memories: Array.from({ length: E }, () => mem),
    shared: cfg.shared ? mem : null,
  };
}
