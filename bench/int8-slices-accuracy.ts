/**
 * How exact is float32 emulated on int8 digits at the chunk's size (64 x 64 by 64 x 128)? The
 * digit arithmetic of bench/int8-slices.ts in exact integers on the CPU, so it is what a tensor
 * kernel would compute, for 3 and 4 slices, against float64 and against a float32 loop, over the first
 * 16 chunks of bench/chunk-product-inputs.ts (those bench/tensor-chunk-products.ts draws first). Worst |error| / max |W| per chunk.
 *   npx tsx bench/int8-slices-accuracy.ts
 */
import { CHUNK as C, chunkProductInputs, KEY_DIM as D } from './chunk-product-inputs.js';
import { cutDigits, digitPairs, joinLevels, scaleExponents } from './int8-slices.js';

const { A: allA, X: allX } = chunkProductInputs(16);
const worst: Record<string, number> = {};
const update = (name: string, v: number) => (worst[name] = Math.max(worst[name] ?? 0, v));
for (let c = 0; c < 16; c++) {
  const A = allA.subarray(c * C * C, (c + 1) * C * C), X = allX.subarray(c * C * D, (c + 1) * C * D);
  const ref = new Float64Array(C * D), f32 = new Float64Array(C * D);
  let den = 0;
  for (let i = 0; i < C; i++) for (let j = 0; j < D; j++) {
    let r = 0, g = 0;
    for (let k = 0; k < C; k++) {
      r += A[i * C + k] * X[k * D + j];
      g = Math.fround(g + Math.fround(A[i * C + k] * X[k * D + j]));
    }
    ref[i * D + j] = r;
    f32[i * D + j] = g;
    den = Math.max(den, Math.abs(r));
  }
  update('float32 loop', Math.max(...Array.from(ref, (r, t) => Math.abs(f32[t] - r))) / den);
  const ea = scaleExponents(A, C, C, true), eb = scaleExponents(X, C, D, false);
  for (const S of [3, 4]) {
    const da = cutDigits(A, C, C, ea, true, S), dx = cutDigits(X, C, D, eb, false, S);
    let e = 0;
    for (let i = 0; i < C; i++) for (let j = 0; j < D; j++) {
      const levels = new Array<number>(S).fill(0);
      for (const [s, t] of digitPairs(S)) for (let k = 0; k < C; k++) levels[s + t] += da[s * C * C + i * C + k] * dx[t * C * D + k * D + j];
      e = Math.max(e, Math.abs(joinLevels(levels, ea[i], eb[j]) - ref[i * D + j]));
    }
    update(`${S} slices (${digitPairs(S).length} products)`, e / den);
  }
}
console.log(worst);
