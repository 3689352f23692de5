/**
 * float32 matrices as int8 digit slices (Ozaki-style), for a matmul on int8 tensor cores.
 *
 * Each row of A (or column of B) is scaled by a power of two 2^-e so that |x| 2^-e < 1, then
 * written as sign * sum_s d_s 2^-7(s+1) with digits d_s in [0, 127]: three slices keep 21 bits.
 * A product keeps the digit pairs (s, t) with s + t < slices: the dropped pairs weigh at most
 * 2^-7(slices+1) each, below the last kept digit's rounding. Integer products of int8 digits,
 * summed in int32, are exact for K < 2^31 / 127^2 = 133,143 terms.
 */

/** Digit pairs (s, t) kept by a product of `slices`-slice operands: s + t < slices. */
export function digitPairs(slices: number): [number, number][] {
  const p: [number, number][] = [];
  for (let s = 0; s < slices; s++) for (let t = 0; s + t < slices; t++) p.push([s, t]);
  return p;
}

/**
 * Power-of-two exponents e with max |x| 2^-e < 1 over each row (byRow) or each column of an
 * rows x cols row-major matrix; 0 for an all-zero line.
 */
export function scaleExponents(x: Float32Array, rows: number, cols: number, byRow: boolean): Int32Array {
  const lines = byRow ? rows : cols;
  const e = new Int32Array(lines);
  for (let l = 0; l < lines; l++) {
    let m = 0;
    if (byRow) for (let k = 0; k < cols; k++) m = Math.max(m, Math.abs(x[l * cols + k]));
    else for (let k = 0; k < rows; k++) m = Math.max(m, Math.abs(x[k * cols + l]));
    e[l] = m > 0 ? Math.floor(Math.log2(m)) + 1 : 0;
  }
  return e;
}

/**
 * The signed digits of x: `slices` int8 matrices of rows x cols, one after another. The last
 * digit is rounded to nearest (clamped to 127), the others truncated.
 */
export function cutDigits(x: Float32Array, rows: number, cols: number, e: Int32Array, byRow: boolean, slices: number): Int8Array {
  const size = rows * cols;
  const out = new Int8Array(slices * size);
  for (let i = 0; i < rows; i++) for (let k = 0; k < cols; k++) {
    const idx = i * cols + k;
    let m = Math.abs(x[idx]) * 2 ** -e[byRow ? i : k];
    const sign = x[idx] < 0 ? -1 : 1;
    for (let s = 0; s < slices; s++) {
      m *= 128;
      const d = s === slices - 1 ? Math.min(127, Math.round(m)) : Math.floor(m);
      out[s * size + idx] = sign * d;
      m -= d;
    }
  }
  return out;
}

/** The value a digit matrix entry stands for: sum_s d_s 2^-7(s+1) 2^e. */
export function joinDigits(digits: Int8Array, size: number, idx: number, e: number, slices: number): number {
  let v = 0;
  for (let s = 0; s < slices; s++) v += digits[s * size + idx] * 2 ** (-7 * (s + 1));
  return v * 2 ** e;
}

/** C_ij from the int32 level sums acc_l = sum over pairs with s + t = l of D^A_s D^B_t. */
export function joinLevels(levels: readonly number[], ea: number, eb: number): number {
  let v = 0;
  levels.forEach((acc, l) => (v += acc * 2 ** (-7 * (l + 2))));
  return v * 2 ** (ea + eb);
}
