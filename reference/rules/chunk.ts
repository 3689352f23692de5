/**
 * docs/spec.md §5, the chunkwise-parallel form, written as plain loops. Inside a chunk of c tokens
 * (c = C, or fewer for the last chunk), G_i is the running sum of log-decays from the chunk
 * start up to and including token i, and h (= S) is the state at the chunk start.
 *
 * Two families:
 *  - decayChunked: linear / decay / gla, where a token only adds k vᵀ to a decayed state;
 *  - deltaChunked: delta / gated-delta, where the added value depends on the state (v − Sᵀk):
 *    the UT / WY transform turns that sequential dependency into a triangular solve.
 */
import type { HeadSequence } from './types.js';
import { checkChunk } from './common.js';

/**
 * One chunk's intermediates, copied out for learners (`momlab learn` shows them). Matrices are
 * row-major: c×c for L, A and P, c×dk for W, c×dv for U and V′, dk×dv for h.
 */
export interface ChunkParts {
  /** index of the chunk's first token in the sequence, and its length */
  start: number;
  c: number;
  /** running sums of log-decays from the chunk start: [c] (delta family) or [c*dk] (decay family) */
  G: Float64Array;
  /** the state at the chunk start */
  h: Float64Array;
  /** delta family: L, A = (I + L)^{-1}, W, U, V′ = U − W h */
  L?: Float64Array;
  A?: Float64Array;
  W?: Float64Array;
  U?: Float64Array;
  Vp?: Float64Array;
  /** decay family: the intra-chunk scores P_ij = Σ_a q_i[a] k_j[a] e^{G_i[a] − G_j[a]} (j ≤ i) */
  P?: Float64Array;
}

let observer: ((p: ChunkParts) => void) | null = null;

/** Runs `fn` (e.g. a rule's `chunked`) with `onChunk` receiving every chunk's intermediates; the numbers are unchanged. */
export function observeChunks<T>(onChunk: (p: ChunkParts) => void, fn: () => T): T {
  const previous = observer;
  observer = onChunk;
  try {
    return fn();
  } finally {
    observer = previous;
  }
}

/**
 * linear / decay / gla. `gk` holds per-token, per-key-channel log-decays [n*dk] (gla as is,
 * decay's scalar repeated over the channels, null for linear = no decay).
 *
 *   O_i = (q_i ⊙ e^{G_i}) h + Σ_{j ≤ i} (Σ_a q_i[a] k_j[a] e^{G_i[a] − G_j[a]}) v_j
 *   h  ← e^{G_c} h + (K ⊙ e^{G_c − G})ᵀ V
 *
 * For decay the inner factor is the spec's (docs/spec.md §5) ((Q Kᵀ) ⊙ D)_ij with D_ij = e^{G_i − G_j}; for gla
 * the decays differ per key channel, so they enter q and k column-wise inside the dot product.
 */
export function decayChunked(seq: HeadSequence, S: Float64Array, C: number, gk: Float64Array | null): Float64Array {
  checkChunk(C);
  const { n, dk, dv, q } = seq;
  const { k, v } = seq.inputs;
  const o = new Float64Array(n * dv);
  for (let start = 0; start < n; start += C) {
    const c = Math.min(C, n - start);

    // G[i*dk + a] = Σ_{t ≤ i} g_t[a], from the chunk start.
    const G = new Float64Array(c * dk);
    for (let i = 0; i < c; i++)
      for (let a = 0; a < dk; a++)
        G[i * dk + a] = (i > 0 ? G[(i - 1) * dk + a] : 0) + (gk ? gk[(start + i) * dk + a] : 0);

    const parts: ChunkParts | null = observer && { start, c, G: G.slice(), h: S.slice(), P: new Float64Array(c * c) };
    for (let i = 0; i < c; i++) {
      const ti = start + i;
      // Inter-chunk part: (q_i ⊙ e^{G_i}) h.
      for (let a = 0; a < dk; a++) {
        const qa = q[ti * dk + a] * Math.exp(G[i * dk + a]);
        for (let col = 0; col < dv; col++) o[ti * dv + col] += qa * S[a * dv + col];
      }
      // Intra-chunk part: causal (diagonal included), decay-masked attention over the chunk.
      for (let j = 0; j <= i; j++) {
        const tj = start + j;
        let Aij = 0;
        for (let a = 0; a < dk; a++) Aij += q[ti * dk + a] * k[tj * dk + a] * Math.exp(G[i * dk + a] - G[j * dk + a]);
        for (let col = 0; col < dv; col++) o[ti * dv + col] += Aij * v[tj * dv + col];
        if (parts) (parts.P as Float64Array)[i * c + j] = Aij;
      }
    }
    if (parts) observer?.(parts);

    // State to the chunk end: h ← e^{G_c} h + (K ⊙ e^{G_c − G})ᵀ V.
    const last = (c - 1) * dk;
    for (let a = 0; a < dk; a++) {
      const decay = Math.exp(G[last + a]);
      for (let col = 0; col < dv; col++) S[a * dv + col] *= decay;
    }
    for (let j = 0; j < c; j++) {
      const tj = start + j;
      for (let a = 0; a < dk; a++) {
        const kj = k[tj * dk + a] * Math.exp(G[last + a] - G[j * dk + a]);
        for (let col = 0; col < dv; col++) S[a * dv + col] += kj * v[tj * dv + col];
      }
    }
  }
  return o;
}

/**
 * delta / gated-delta. `g` holds scalar log-decays [n] (null for delta = no decay), beta [n].
 *
 * Write the update as S_i = α_i S_{i-1} + k_i v'_iᵀ with v'_i = β_i (v_i − α_i S_{i-1}ᵀ k_i).
 * Unrolling S_{i-1} from h shows the v' solve a lower-triangular system (I + L) V' = βV − (βe^G ⊙ K) h:
 *
 *   L_ij = β_i (k_i·k_j) e^{G_i − G_j} for i > j, else 0;   A = (I + L)^{-1}
 *   U = A (β ⊙ V),   W = A ((β e^G) ⊙ K),   V' = U − W h
 *   O = (Q ⊙ e^G) h + ((Q Kᵀ) ⊙ D) V',   h ← e^{G_c} h + (K ⊙ e^{G_c − G})ᵀ V'
 */
export function deltaChunked(seq: HeadSequence, S: Float64Array, C: number, g: Float64Array | null): Float64Array {
  checkChunk(C);
  const { n, dk, dv, q } = seq;
  const { k, v, beta } = seq.inputs;
  const o = new Float64Array(n * dv);
  const dot = (x: Float64Array, xi: number, y: Float64Array, yi: number): number => {
    let s = 0;
    for (let a = 0; a < dk; a++) s += x[xi * dk + a] * y[yi * dk + a];
    return s;
  };

  for (let start = 0; start < n; start += C) {
    const c = Math.min(C, n - start);

    // G_i = Σ_{t ≤ i} g_t from the chunk start.
    const G = new Float64Array(c);
    for (let i = 0; i < c; i++) G[i] = (i > 0 ? G[i - 1] : 0) + (g ? g[start + i] : 0);

    // A = (I + L)^{-1} by forward substitution. (I + L) A = I gives, row by row,
    // A_i = e_i − Σ_{j<i} L_ij A_j; A is lower triangular with a unit diagonal.
    const A = new Float64Array(c * c);
    const L = observer ? new Float64Array(c * c) : null;
    for (let i = 0; i < c; i++) {
      A[i * c + i] = 1;
      for (let j = 0; j < i; j++) {
        const Lij = beta[start + i] * dot(k, start + i, k, start + j) * Math.exp(G[i] - G[j]);
        if (L) L[i * c + j] = Lij;
        for (let m = 0; m <= j; m++) A[i * c + m] -= Lij * A[j * c + m];
      }
    }

    // U = A (β ⊙ V) and W = A ((β e^G) ⊙ K), then V' = U − W h.
    const Vp = new Float64Array(c * dv);
    const W = new Float64Array(c * dk);
    for (let i = 0; i < c; i++)
      for (let m = 0; m <= i; m++) {
        const am = A[i * c + m] * beta[start + m];
        const amDecayed = am * Math.exp(G[m]);
        for (let col = 0; col < dv; col++) Vp[i * dv + col] += am * v[(start + m) * dv + col];
        for (let a = 0; a < dk; a++) W[i * dk + a] += amDecayed * k[(start + m) * dk + a];
      }
    const U = observer ? Vp.slice() : null;
    for (let i = 0; i < c; i++)
      for (let a = 0; a < dk; a++) {
        const w = W[i * dk + a];
        for (let col = 0; col < dv; col++) Vp[i * dv + col] -= w * S[a * dv + col];
      }

    if (L && U) observer?.({ start, c, G: G.slice(), h: S.slice(), L, A: A.slice(), W: W.slice(), U, Vp: Vp.slice() });

    // O = (Q ⊙ e^G) h + ((Q Kᵀ) ⊙ D) V', D_ij = e^{G_i − G_j} for j ≤ i.
    for (let i = 0; i < c; i++) {
      const ti = start + i;
      const decay = Math.exp(G[i]);
      for (let a = 0; a < dk; a++) {
        const qa = q[ti * dk + a] * decay;
        for (let col = 0; col < dv; col++) o[ti * dv + col] += qa * S[a * dv + col];
      }
      for (let j = 0; j <= i; j++) {
        const Dij = dot(q, ti, k, start + j) * Math.exp(G[i] - G[j]);
        for (let col = 0; col < dv; col++) o[ti * dv + col] += Dij * Vp[j * dv + col];
      }
    }

    // h ← e^{G_c} h + (K ⊙ e^{G_c − G})ᵀ V'.
    const Gc = G[c - 1];
    const decay = Math.exp(Gc);
    for (let x = 0; x < dk * dv; x++) S[x] *= decay;
    for (let j = 0; j < c; j++) {
      const scale = Math.exp(Gc - G[j]);
      for (let a = 0; a < dk; a++) {
        const kj = k[(start + j) * dk + a] * scale;
        for (let col = 0; col < dv; col++) S[a * dv + col] += kj * Vp[j * dv + col];
      }
    }
  }
  return o;
}
