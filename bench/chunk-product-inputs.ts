/**
 * Inputs like the chunked prepare's W = A X, for the chunk-sized probes
 * (bench/tensor-chunk-products.ts on the GPU, bench/int8-slices-accuracy.ts on the CPU): per
 * chunk, A lower-triangular with a unit diagonal and entries that shrink away from it (an
 * inverse of I + strictly lower), X rows of unit-norm-scale keys times β e^G. Seeded, so both
 * tools draw the same first chunks.
 */
export const CHUNK = 64;
export const KEY_DIM = 128;

export function chunkProductInputs(chunks: number): { A: Float32Array; X: Float32Array } {
  const C = CHUNK, D = KEY_DIM;
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const A = new Float32Array(chunks * C * C), X = new Float32Array(chunks * C * D);
  for (let c = 0; c < chunks; c++) {
    for (let i = 0; i < C; i++) for (let k = 0; k <= i; k++) A[c * C * C + i * C + k] = i === k ? 1 : Math.fround((rnd() * 2 - 1) * 0.5 * Math.exp(-(i - k) / 16));
    for (let k = 0; k < C; k++) {
      const scale = ((0.05 + 0.9 * rnd()) * Math.exp(-0.2 * rnd() * (k + 1))) / Math.sqrt(D);
      for (let j = 0; j < D; j++) X[c * C * D + k * D + j] = Math.fround((rnd() * 2 - 1) * Math.sqrt(3) * scale);
    }
  }
  return { A, X };
}
