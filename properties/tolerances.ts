/**
 * Float32-vs-float64 tolerances (SPEC 9 error ratio, rms(ref − got) / (rms(ref) + 1e-8)), per
 * property and rule. Each comparison also passes outright when max |ref − got| ≤ 1e-6.
 *
 * How they were set: each GPU property was run on lavapipe (Mesa 25.0.7 llvmpipe, the CI
 * driver) over 100 cases per rule at sizes 'small' and 40 per rule at 'medium' (T ≤ 140,
 * dk, dv ≤ 16, H ≤ 3), recurrent and every chunk size, random initial states, with
 * `npx momlab check --property P --rules R --runs N --sizes S` (its "worst err" column).
 * The tolerance is the worst ratio measured, over all modes and both sizes, times 10, rounded
 * up. Float32 has an epsilon of 6e-8; the measured ratios are 1.2-8x that, as expected from
 * sums of ~dk products over a few dozen tokens. A real mistake (a wrong gate, a dropped token,
 * a swapped input) gives 1e-3 or more. Never loosen one to make a failure pass: a failure is a
 * finding; a tolerance only changes with a new, stated measurement.
 */

/** Largest built-in tolerance: the starting point for a rule written as math (momlab fuzz). */
export const TEXT_RULE_DEFAULT = 5e-6;

// gpu-equals-reference, worst ratio measured (small / medium):
//   linear 1.6e-7 / 2.4e-7, decay 2.0e-7 / 1.7e-7, gla 1.6e-7 / 1.3e-7,
//   delta 4.1e-7 / 4.6e-7 (chunk 64), gated-delta 2.5e-7 / 1.9e-7.
const GPU_VS_REF: Record<string, number> = { linear: 3e-6, decay: 2e-6, gla: 2e-6, delta: 5e-6, 'gated-delta': 3e-6 };

// gpu-chunked-equals-recurrent (both float32), worst ratio measured (small / medium):
//   linear 1.9e-7 / 2.1e-7, decay 1.9e-7 / 1.5e-7, gla 1.7e-7 / 1.6e-7,
//   delta 4.8e-7 / 4.8e-7 (chunk 64), gated-delta 2.3e-7 / 1.9e-7.
const GPU_CHUNK_VS_REC: Record<string, number> = { linear: 3e-6, decay: 2e-6, gla: 2e-6, delta: 5e-6, 'gated-delta': 3e-6 };

// gpu-mix-before-equals-after, GPU after vs GPU before, worst ratio measured (small / medium):
//   linear 1.3e-7 / 1.3e-7, decay 1.5e-7 / 1.5e-7, gla 1.7e-7 / 1.5e-7,
//   delta 1.8e-7 / 1.3e-7, gated-delta 1.7e-7 / 1.3e-7.
const GPU_MIX: Record<string, number> = { linear: 2e-6, decay: 2e-6, gla: 2e-6, delta: 2e-6, 'gated-delta': 2e-6 };

// gpu-decode-equals-forward, decode vs one GPU pass, worst ratio measured (small / medium):
// 0 (bit-identical) when both prefill token by token; with a chunked prefill (steps are token
// by token) linear 1.4e-7 / 1.8e-7, decay 1.4e-7 / 1.4e-7, gla 1.1e-7 / 1.2e-7,
// delta 4.0e-7 / 4.1e-7, gated-delta 1.7e-7 / 1.2e-7.
const GPU_DECODE: Record<string, number> = { linear: 2e-6, decay: 2e-6, gla: 2e-6, delta: 5e-6, 'gated-delta': 2e-6 };

// gpu-relabel-invariant: measured 0 (bit-identical outputs and states) for every rule and mode
// over 100 cases per rule ('small'): the same memories are selected in the same order, and
// each runs the same arithmetic. An implementation may still sum the softmax denominator in
// index order, which a relabelling changes by an ulp of the weights (6e-8 relative): 1e-6
// allows that and nothing more.
const GPU_RELABEL: Record<string, number> = { linear: 1e-6, decay: 1e-6, gla: 1e-6, delta: 1e-6, 'gated-delta': 1e-6 };

const pick = (table: Record<string, number>, rule: string): number => table[rule] ?? TEXT_RULE_DEFAULT;

export const gpuTolerance = (rule: string): number => pick(GPU_VS_REF, rule);
export const gpuChunkTolerance = (rule: string): number => pick(GPU_CHUNK_VS_REC, rule);
export const gpuMixTolerance = (rule: string): number => pick(GPU_MIX, rule);
export const gpuDecodeTolerance = (rule: string): number => pick(GPU_DECODE, rule);
export const gpuRelabelTolerance = (rule: string): number => pick(GPU_RELABEL, rule);
