/**
 * Issue 3: the memories have no identity beyond their inputs. Relabelling them — permuting the
 * router logit columns, the per-memory inputs and the initial states together by π — leaves
 * the output unchanged and permutes the final states the same way, on the GPU.
 *
 * Ties: with tied logits the tie rule (lower index first) is not invariant under relabelling —
 * memories 0 and 1 tied for the last slot swap roles when π swaps them — so this property draws
 * router logits with no two equal per token ('distinct'). The tie rule itself is checked by the
 * routing and gather properties. The selected set and its order (by descending p) are then the
 * same memories before and after, so only float32 rounding (softmax sums in another order)
 * can differ.
 */
import fc from 'fast-check';
import { checkedForward } from './canary.js';
import type { CoreInputs, CoreState } from '../reference/types.js';
import { coreCaseArb, type CoreCase } from './arbitraries.js';
import { compareOutcome } from './compare.js';
import { forwardMode, gpuModeArb, type GpuMode } from './gpu-mode.js';
import { gpuRelabelTolerance } from './tolerances.js';
import type { Property } from './types.js';

export type RelabelCase = CoreCase & { perm: number[]; mode: GpuMode };

/** A permutation of 0..n-1 from n random keys (an argsort); shrinks towards the identity. */
export function permutationArb(n: number): fc.Arbitrary<number[]> {
  return fc.array(fc.nat({ max: 1000 }), { minLength: n, maxLength: n }).map((keys) => Array.from({ length: n }, (_, i) => i).sort((a, b) => keys[a] - keys[b] || a - b));
}

/** Memory e becomes memory perm[e]. */
export function relabelInputs(x: CoreInputs, E: number, perm: number[]): CoreInputs {
  const logits = new Float64Array(x.logits.length);
  for (let row = 0; row < x.logits.length; row += E) for (let e = 0; e < E; e++) logits[row + perm[e]] = x.logits[row + e];
  const memories = new Array(E);
  for (let e = 0; e < E; e++) memories[perm[e]] = x.memories[e];
  return { ...x, logits, memories };
}

/** Routed states [E, ...] with block e moved to perm[e]. */
export function relabelRouted<A extends Float32Array | Float64Array>(routed: A, E: number, perm: number[]): A {
  const block = routed.length / E;
  const out = new (routed.constructor as { new (n: number): A })(routed.length);
  for (let e = 0; e < E; e++) out.set(routed.subarray(e * block, (e + 1) * block), perm[e] * block);
  return out;
}

const relabelState = (s: CoreState | undefined, E: number, perm: number[]): CoreState | undefined =>
  s && { routed: relabelRouted(s.routed, E, perm), shared: s.shared };

export const gpuRelabelInvariant: Property<RelabelCase> = {
  id: 'gpu-relabel-invariant',
  title: 'GPU: permuting the memories (logit columns, inputs, states) leaves the output unchanged',
  needsGpu: true,
  perRule: true,
  applies: (t) => t.gpu !== undefined,
  arbitrary: (t, sizes) =>
    coreCaseArb(t.ref.inputs, sizes, { logits: 'distinct' }).chain((c) =>
      fc.record({ perm: permutationArb(c.cfg.E), mode: gpuModeArb(t.gpu!) }).map(({ perm, mode }) => ({ ...c, perm, mode })),
    ),
  async check(env, t, c) {
    const { cfg, x, initial, perm } = c;
    const fm = forwardMode(c.mode);
    const a = await checkedForward(env.ctx!, t.gpu!, cfg, x, { ...fm, initial });
    const b = await checkedForward(env.ctx!, t.gpu!, cfg, relabelInputs(x, cfg.E, perm), { ...fm, initial: relabelState(initial, cfg.E, perm) });
    const tol = gpuRelabelTolerance(t.name);
    const pairs = [
      { what: 'o', ref: a.o, got: b.o },
      { what: 'final.routed (relabelled)', ref: relabelRouted(a.final.routed, cfg.E, perm), got: b.final.routed },
      { what: 'final.shared', ref: a.final.shared ?? [], got: b.final.shared ?? [] },
    ];
    return compareOutcome(pairs, tol, { context: `π = [${perm}], ${c.mode}` });
  },
  describe: (c) => c,
};
