/** Small pieces every built-in rule shares: the read-out and the chunk-size check. */
import { ConfigError } from '../errors.js';
import type { Dims } from '../types.js';

/** SPEC 1: o = Sᵀ q, i.e. o[j] = Σ_i S[i, j] q[i]. */
export function readOut(S: Float64Array, q: Float64Array, dims: Dims, out: Float64Array): void {
  const { dk, dv } = dims;
  out.fill(0, 0, dv);
  for (let i = 0; i < dk; i++) {
    const qi = q[i];
    const row = i * dv;
    for (let j = 0; j < dv; j++) out[j] += S[row + j] * qi;
  }
}

/** SPEC 5 works for any chunk size C >= 1; anything else is a configuration error. */
export function checkChunk(C: number): void {
  if (!Number.isInteger(C) || C < 1) throw new ConfigError(`chunk size must be an integer >= 1, got ${C}`);
}
