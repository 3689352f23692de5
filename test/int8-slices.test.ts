/**
 * The int8 digit slices behind bench/tensor-cores.ts (float32 matmul emulated on int8 tensor
 * cores): each entry is rebuilt within one unit of the last digit, and a product summed from the
 * kept digit pairs in exact integer arithmetic stays within the error those units allow.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cutDigits, digitPairs, joinDigits, joinLevels, scaleExponents } from '../bench/int8-slices.js';

// values on a grid (fc.float crowds near 0), with a per-line power-of-two scale so that rows
// of very different size, and all-zero rows, are drawn
const matrix = (rows: number, cols: number) =>
  fc
    .tuple(
      fc.array(fc.integer({ min: -65536, max: 65536 }), { minLength: rows * cols, maxLength: rows * cols }),
      fc.array(fc.integer({ min: -30, max: 30 }), { minLength: rows, maxLength: rows }),
      fc.array(fc.boolean(), { minLength: rows, maxLength: rows }),
    )
    .map(([v, scale, zero]) => Float32Array.from(v, (x, i) => (zero[Math.floor(i / cols)] ? 0 : Math.fround((x / 65536) * 2 ** scale[Math.floor(i / cols)]))));

describe('int8 digit slices', () => {
  it('keeps the digit pairs with s + t < slices', () => {
    expect(digitPairs(1)).toEqual([[0, 0]]);
    expect(digitPairs(3)).toEqual([[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [2, 0]]);
  });

  it('rebuilds every entry within one unit of the last digit, by rows and by columns', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 4 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (rows, cols, slices, byRow, seed) => {
          const x = fc.sample(matrix(rows, cols), { seed, numRuns: 1 })[0];
          const e = scaleExponents(x, rows, cols, byRow);
          const d = cutDigits(x, rows, cols, e, byRow, slices);
          for (const v of d) expect(Math.abs(v)).toBeLessThanOrEqual(127);
          for (let i = 0; i < rows; i++) for (let k = 0; k < cols; k++) {
            const idx = i * cols + k, ex = e[byRow ? i : k];
            // scaled below 1 ...
            expect(Math.abs(x[idx]) * 2 ** -ex).toBeLessThan(1);
            // ... and rebuilt within 2^-7·slices of the line's scale (the last digit rounds, clamped at 127)
            const err = Math.abs(joinDigits(d, rows * cols, idx, ex, slices) - x[idx]);
            expect(err).toBeLessThanOrEqual(2 ** (-7 * slices) * 2 ** ex);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a product from the kept pairs, in exact integers, is within K·4·2^-21 of the scales (3 slices)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (M, K, N, seed) => {
          const [A, B] = fc.sample(fc.tuple(matrix(M, K), matrix(K, N)), { seed, numRuns: 1 })[0];
          const ea = scaleExponents(A, M, K, true), eb = scaleExponents(B, K, N, false);
          const S = 3;
          const da = cutDigits(A, M, K, ea, true, S), db = cutDigits(B, K, N, eb, false, S);
          let worstRatio = 0;
          for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
            const levels = [0, 0, 0];
            for (const [s, t] of digitPairs(S)) for (let k = 0; k < K; k++) levels[s + t] += da[s * M * K + i * K + k] * db[t * K * N + k * N + j];
            let exact = 0;
            for (let k = 0; k < K; k++) exact += A[i * K + k] * B[k * N + j];
            // per term: two rounded operands (2^-21 each) plus the dropped pairs (< 2^-21)
            const bound = K * 4 * 2 ** -21 * 2 ** (ea[i] + eb[j]);
            const err = Math.abs(joinLevels(levels, ea[i], eb[j]) - exact);
            if (bound > 0) worstRatio = Math.max(worstRatio, err / bound);
            else expect(err).toBe(0);
          }
          expect(worstRatio).toBeLessThanOrEqual(1);
        },
      ),
      { numRuns: 200 },
    );
  });
});
