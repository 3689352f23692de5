/**
 * docs/spec.md §2, routing invariants of the reference router, per token:
 * - the probabilities are a softmax: non-negative, summing to 1;
 * - k distinct indices in 0..E-1, ordered by descending p, then ascending index;
 * - every chosen memory beats every memory left out (higher p, or equal p and a lower index:
 *   ties go to the lower index);
 * - the chosen indices are the top k of the *logits* ranked the same way (an independent oracle:
 *   softmax is monotone, and different logits on the 2^-10 grid never round to equal p);
 * - the weights are the chosen p renormalised: they sum to 1;
 * - route() over [B, T, E] agrees with routeToken() token by token.
 * Router logits are drawn in all three styles, 'ties' making many exact ties.
 */
import fc from 'fast-check';
import { route, routeToken } from '../reference/router.js';
import { logitsArb, type LogitStyle } from './arbitraries.js';
import { exact, type Property } from './types.js';

export interface RoutingCase {
  B: number;
  T: number;
  E: number;
  topk: number;
  style: LogitStyle;
  logits: Float64Array;
}

// Sums of ≤ 10 float64 probabilities: off 1 by a few ulps (measured worst 4.4e-16 over 2000
// cases); 1e-12 leaves room and still catches any missing or doubled term.
const SUM_TOL = 1e-12;

export function routingCaseArb(maxTopk: number, maxExtra: number): fc.Arbitrary<RoutingCase> {
  return fc
    .record({
      B: fc.integer({ min: 1, max: 2 }),
      T: fc.integer({ min: 1, max: 8 }),
      topk: fc.integer({ min: 1, max: maxTopk }),
      extra: fc.integer({ min: 0, max: maxExtra }),
      style: fc.constantFrom<LogitStyle>('ties', 'spread', 'distinct'),
    })
    .chain(({ extra, ...r }) => {
      const E = r.topk + extra;
      return logitsArb(r.B, r.T, E, r.style).map((logits) => ({ ...r, E, logits }));
    });
}

/** The first violated invariant of one token, or null. */
function tokenProblem(z: Float64Array, p: Float64Array, idx: ArrayLike<number>, w: ArrayLike<number>, topk: number): string | null {
  const E = z.length;
  let ps = 0;
  for (let e = 0; e < E; e++) {
    if (!(p[e] >= 0)) return `p[${e}] = ${p[e]} is negative or NaN`;
    ps += p[e];
  }
  if (Math.abs(ps - 1) > SUM_TOL) return `probabilities sum to ${ps}, not 1`;
  const chosen = Array.from(idx);
  if (chosen.length !== topk) return `${chosen.length} indices for k = ${topk}`;
  if (new Set(chosen).size !== topk) return `indices ${chosen} are not distinct`;
  for (const e of chosen) if (!Number.isInteger(e) || e < 0 || e >= E) return `index ${e} outside 0..${E - 1}`;
  const before = (a: number, b: number) => p[a] > p[b] || (p[a] === p[b] && a < b);
  for (let j = 0; j + 1 < topk; j++)
    if (!before(chosen[j], chosen[j + 1])) return `order: ${chosen[j]} (p ${p[chosen[j]]}) listed before ${chosen[j + 1]} (p ${p[chosen[j + 1]]})`;
  for (let u = 0; u < E; u++) {
    if (chosen.includes(u)) continue;
    for (const e of chosen) if (!before(e, u)) return `memory ${u} (p ${p[u]}) left out while ${e} (p ${p[e]}) was chosen (ties go to the lower index)`;
  }
  // Oracle from the logits alone.
  const byLogit = Array.from({ length: E }, (_, e) => e).sort((a, b) => z[b] - z[a] || a - b).slice(0, topk);
  if (byLogit.join() !== chosen.join()) return `chosen ${chosen}, but the top ${topk} logits are ${byLogit}`;
  let ws = 0;
  let chosenP = 0;
  for (const e of chosen) chosenP += p[e];
  for (let j = 0; j < topk; j++) {
    ws += w[j];
    const expect = p[chosen[j]] / chosenP;
    if (Math.abs(w[j] - expect) > SUM_TOL * expect) return `weight ${j} = ${w[j]}, expected p/Σp = ${expect}`;
  }
  if (Math.abs(ws - 1) > SUM_TOL) return `weights sum to ${ws}, not 1`;
  return null;
}

export const routingInvariants: Property<RoutingCase> = {
  id: 'routing-invariants',
  title: 'reference router: softmax, k distinct indices in order, ties to the lower index, weights sum to 1',
  needsGpu: false,
  perRule: false,
  applies: () => true,
  arbitrary: (_t, sizes) => routingCaseArb(sizes.topk[1], sizes.extraE[1]),
  check(_env, _t, c) {
    const { B, T, E, topk, logits } = c;
    const r = route(logits, B, T, E, topk);
    for (let bt = 0; bt < B * T; bt++) {
      const z = logits.subarray(bt * E, (bt + 1) * E);
      const p = r.probs.subarray(bt * E, (bt + 1) * E);
      const idx = r.indices.subarray(bt * topk, (bt + 1) * topk);
      const w = r.weights.subarray(bt * topk, (bt + 1) * topk);
      const problem = tokenProblem(z, p, idx, w, topk);
      if (problem) return exact(false, `token ${bt} (b ${Math.floor(bt / T)}, t ${bt % T}), logits [${Array.from(z)}]: ${problem}`);
      const one = routeToken(z, topk);
      if (one.indices.join() !== Array.from(idx).join() || one.weights.some((x, j) => x !== w[j]))
        return exact(false, `token ${bt}: route() and routeToken() disagree (${Array.from(idx)} vs ${one.indices})`);
    }
    return exact(true);
  },
  describe: (c) => ({ B: c.B, T: c.T, E: c.E, topk: c.topk, style: c.style, logits: Array.from(c.logits) }),
};
