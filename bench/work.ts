/**
 * The work of one MoM forward in the core form, counted from its actual segments (the routing
 * decides how many tokens each memory gets, so the count is exact for the inputs benchmarked).
 *
 * FLOPs are those of the chunkwise algorithm of docs/spec.md §5 (delta rules), per head and per chunk of
 * n tokens, a multiply-add counted as 2:
 *   Q Kᵀ (lower, diagonal incl.)  n(n+1)/2 · 2dk      K Kᵀ (strictly lower)  n(n−1)/2 · 2dk
 *   (I + L)^{-1} by substitution   Σ_{r<n} r(r−1) = n(n−1)(n−2)/3
 *   W = A (β e^G ⊙ K)              n(n−1)/2 · 2dk      U = A (β ⊙ V)           n(n−1)/2 · 2dv
 *   V' = U − W h                   n · 2 dk dv         O = Q h                  n · 2 dk dv
 *   O += Aqk V'                    n(n+1)/2 · 2dv      h ← e^g h + Kᵀ V'         n · 2 dk dv
 * that is about 6·dk·dv + 2n(dk + dv) + n²/3 per token. Decay exponentials and the router,
 * gather and mix (O(dk) per token) are left out. The same count is used for the token-by-token
 * path so both rows measure the same work per second (its own count, 7·dk·dv per token, is 15%
 * lower at dk = dv = 128, C = 64).
 *
 * Bytes are the compulsory traffic of the pipeline as implemented: every kernel's reads and
 * writes counted once (no re-reads by several workgroups, no cache effects), float32.
 */
import type { CoreConfig } from '../reference/types.js';
export interface Segments {
  /** tokens per segment (E·B routed, then B shared) */
  lengths: number[];
  /** gathered positions P */
  positions: number;
}

/** The sizes the work is counted for (the core config without the options). */
export type WorkShape = Pick<CoreConfig, 'B' | 'T' | 'H' | 'E' | 'topk' | 'dk' | 'dv'>;

/** Routing on the host (softmax is monotone, so top-k of the logits; ties to the lower index). */
export function segmentsOf(logits: Float32Array, s: WorkShape): Segments {
  const { B, T, E, topk } = s;
  const counts = new Array<number>(E * B).fill(0);
  const order = Array.from({ length: E }, (_, e) => e);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const z = logits.subarray((b * T + t) * E, (b * T + t + 1) * E);
      order.sort((x, y) => z[y] - z[x] || x - y);
      for (let j = 0; j < topk; j++) counts[order[j] * B + b]++;
    }
  }
  const lengths = [...counts, ...new Array<number>(B).fill(T)];
  return { lengths, positions: lengths.reduce((a, n) => a + n, 0) };
}

export function chunkFlops(seg: Segments, s: WorkShape, C: number): number {
  const { dk, dv, H } = s;
  const chunk = (n: number) =>
    n * (n + 1) * dk + n * (n - 1) * dk + ((n - 2) * (n - 1) * n) / 3 + n * (n - 1) * (dk + dv) + 6 * n * dk * dv + n * (n + 1) * dv;
  let total = 0;
  for (const len of seg.lengths) {
    const full = Math.floor(len / C);
    total += full * chunk(C) + chunk(len % C);
  }
  return total * H;
}

/**
 * Compulsory bytes of the chunked forward (router, gather, prepare, wu, scan, output, mix) in
 * float32, as gpu/kernels/chunk-encoder.ts runs it: the scan writes V' and the state at each chunk
 * start and the output kernel reads them back; prepare writes the inverse A and wu reads it back
 * (k, β, G read twice). Result files from before those splits counted less traffic (docs/perf.md).
 */
export function forwardBytes(seg: Segments, s: WorkShape, C: number, mode: 'chunk' | 'recurrent' = 'chunk'): number {
  const { B, T, H, E, topk: K, dk, dv } = s;
  const P = seg.positions;
  const S = seg.lengths.length;
  const chunks = seg.lengths.reduce((a, n) => a + Math.ceil(n / C), 0);
  const states = chunks * H * dk * dv; // one chunk-start state per chunk
  const perPos = H * (2 * dk + dv + 2); // q, k, v, g, beta of one gathered position
  const router = B * T * E + 2 * B * T * K;
  const gather = 2 * (P - B * T) * perPos; // read the routed rows, write them gathered (the shared memory's are uploaded in place; the bench always has it)
  // prepare reads q, k, g, β and writes G, Aqk and A; wu reads k, v, β, G, A and writes W, U
  const prepare = P * H * (2 * dk + 2) + P * H * (1 + C + C);
  const wu = P * H * (dk + dv + 2 + C) + P * H * (dk + dv);
  const scan = P * H * (dk + dv + 1 + dk) + 2 * S * H * dk * dv + P * H * dv + states; // reads k, U, G, W; state in/out; writes V' and the chunk-start states
  const output = P * H * (dk + 1 + C + dv + dv) + states; // reads q, G, Aqk, V', the chunk-start states; writes o
  const mix = P * H * dv + B * T * K * 2 + B * T * H * dv;
  // token by token: each gathered position's q, k, v, g, β read once, the state in and out, o
  // written (older result files charged it the chunked count)
  if (mode === 'recurrent') return 4 * (router + gather + P * perPos + 2 * S * H * dk * dv + P * H * dv + mix);
  return 4 * (router + gather + prepare + wu + scan + output + mix);
}
