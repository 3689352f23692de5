/**
 * Float32-vs-float64 tolerances (SPEC 9 error ratio, rms(ref − got) / (rms(ref) + 1e-8)), per
 * property and rule. Each comparison also passes outright when max |ref − got| ≤ 1e-6.
 *
 * How they were set: each GPU property was run on lavapipe (Mesa 25.0.7 llvmpipe, the CI
 * driver) with `npx momlab check --property P --runs N --sizes S` (its "worst err" column):
 * 600 cases per rule at sizes 'small' (seeds 11 and 23), 100 more at 'small', 40 per rule at
 * 'medium' (T ≤ 140, dk, dv ≤ 16, H ≤ 3) and, for gpu-equals-reference, 8 per rule at 'large'
 * (dk, dv ≤ 64, T ≤ 400); recurrent and every chunk size, zero and random initial states.
 * The tolerance is the worst ratio seen over all of these, times 10, rounded up. Float32's
 * epsilon is 6e-8; the measured ratios are 1.5-10x that, as expected from sums of ~dk products
 * over a few dozen tokens, and did not grow with the sizes. A real mistake (a wrong gate, a
 * dropped token, a swapped input) gives 1e-3 or more. Never loosen one to make a failure pass:
 * a failure is a finding; a tolerance only changes with a new, stated measurement.
 */

// gpu-equals-reference, worst ratio measured: linear 3.5e-7 (large), decay 2.8e-7,
// gla 3.8e-7, delta 5.9e-7 (chunk 64), gated-delta 2.8e-7.
const GPU_VS_REF: Record<string, number> = { linear: 4e-6, decay: 3e-6, gla: 4e-6, delta: 6e-6, 'gated-delta': 3e-6 };

// gpu-chunked-equals-recurrent (both float32), worst ratio measured: linear 2.8e-7,
// decay 5.1e-7, gla 3.0e-7, delta 5.8e-7, gated-delta 4.3e-7.
const GPU_CHUNK_VS_REC: Record<string, number> = { linear: 3e-6, decay: 6e-6, gla: 4e-6, delta: 6e-6, 'gated-delta': 5e-6 };

// gpu-mix-before-equals-after, GPU after vs GPU before, worst ratio measured: linear 2.5e-7,
// decay 2.6e-7, gla 3.1e-7, delta 2.1e-7, gated-delta 2.5e-7.
const GPU_MIX: Record<string, number> = { linear: 3e-6, decay: 3e-6, gla: 4e-6, delta: 3e-6, 'gated-delta': 3e-6 };

// gpu-decode-equals-forward, decode vs one GPU pass: 0 (bit-identical) when the prefill runs
// token by token like the steps; with a chunked prefill, worst ratio measured: linear 2.2e-7,
// decay 1.6e-7, gla 1.6e-7, delta 6.1e-7, gated-delta 3.4e-7.
const GPU_DECODE: Record<string, number> = { linear: 3e-6, decay: 2e-6, gla: 2e-6, delta: 7e-6, 'gated-delta': 4e-6 };

// gpu-relabel-invariant: measured 0 (bit-identical outputs and states) for every rule and mode
// over 700 cases per rule: the same memories are selected in the same order and each runs the
// same arithmetic. An implementation may still sum the softmax denominator in index order,
// which a relabelling changes by an ulp of the weights (6e-8 relative): 1e-6 allows that and
// nothing more.
const GPU_RELABEL: Record<string, number> = { linear: 1e-6, decay: 1e-6, gla: 1e-6, delta: 1e-6, 'gated-delta': 1e-6 };

/**
 * For a rule written as math (momlab fuzz): about the largest built-in tolerance. A text rule whose
 * float32 error is larger needs its own measured value, not a looser default.
 */
export const TEXT_RULE_DEFAULT = 6e-6;

const pick = (table: Record<string, number>, rule: string): number => table[rule] ?? TEXT_RULE_DEFAULT;

export const gpuTolerance = (rule: string): number => pick(GPU_VS_REF, rule);
export const gpuChunkTolerance = (rule: string): number => pick(GPU_CHUNK_VS_REC, rule);
export const gpuMixTolerance = (rule: string): number => pick(GPU_MIX, rule);
export const gpuDecodeTolerance = (rule: string): number => pick(GPU_DECODE, rule);
export const gpuRelabelTolerance = (rule: string): number => pick(GPU_RELABEL, rule);
