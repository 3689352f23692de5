/**
 * docs/spec.md §4, the core MoM recurrence over [B, T, H, ·] with E routed memories, top-k routing and
 * an optional always-on shared memory, in two forms:
 *
 *  - momForward, the direct form: token by token, advance the k selected memories (and the
 *    shared one), then read out ("mix after": weighted sum of per-memory outputs; "mix
 *    before": read the weighted sum of the states).
 *  - momGathered, the gathered form the GPU uses: each memory runs over its own subsequence of
 *    routed tokens (stable, time order kept) as an independent sequence, and the outputs are
 *    scattered back with their routing weights.
 *
 * State layout: routed [E, B, H, dk, dv], shared [B, H, dk, dv] (reference/types.ts).
 */
import { ConfigError, ShapeError } from './errors.js';
import { route } from './router.js';
import { checkChunk, stepThrough } from './rules/common.js';
import type { BuiltinRule, HeadSequence } from './rules/types.js';
import type { CoreConfig, CoreInputs, CoreOutputs, CoreState, MemoryInputs, Routing, Rule, RouteMix, TokenInputs } from './types.js';
import { widthOf } from './types.js';
import { validateCore } from './validate.js';

export { validateCore } from './validate.js';

/** The query scale s of docs/spec.md §4: cfg.scale, default dk^{-1/2}. */
export const scaleOf = (cfg: Pick<CoreConfig, 'dk' | 'scale'>): number => cfg.scale ?? 1 / Math.sqrt(cfg.dk);

/** All memories at zero. */
export function emptyState(cfg: Omit<CoreConfig, 'T'>): CoreState {
  const { E, B, H, dk, dv } = cfg;
  return { routed: new Float64Array(E * B * H * dk * dv), shared: cfg.shared ? new Float64Array(B * H * dk * dv) : null };
}

export function copyState(s: CoreState): CoreState {
  return { routed: s.routed.slice(), shared: s.shared ? s.shared.slice() : null };
}

/** The dk*dv state of routed memory e for (b, h), a view into state.routed. */
export function routedState(state: CoreState, cfg: Omit<CoreConfig, 'T'>, e: number, b: number, h: number): Float64Array {
  const size = cfg.dk * cfg.dv;
  const at = ((e * cfg.B + b) * cfg.H + h) * size;
  return state.routed.subarray(at, at + size);
}

/** The dk*dv shared state for (b, h), a view into state.shared. */
export function sharedState(state: CoreState, cfg: Omit<CoreConfig, 'T'>, b: number, h: number): Float64Array {
  const size = cfg.dk * cfg.dv;
  const at = (b * cfg.H + h) * size;
  return (state.shared as Float64Array).subarray(at, at + size);
}

/** One memory's inputs at token (b, t, h): vectors as views, scalars as numbers. */
export function tokenInputs(rule: Rule, mem: MemoryInputs, cfg: CoreConfig, b: number, t: number, h: number): TokenInputs {
  const x: TokenInputs = {};
  const bth = (b * cfg.T + t) * cfg.H + h;
  for (const d of rule.inputs) {
    const w = widthOf(d.width, cfg);
    x[d.name] = d.width === 'scalar' ? mem[d.name][bth] : mem[d.name].subarray(bth * w, (bth + 1) * w);
  }
  return x;
}

/** docs/spec.md §4, mix before: M̃ = Σ_j w[j] S^{I[j]} + S^shared for sequence b, head h, written into M [dk*dv]. */
export function mixStates(state: CoreState, cfg: Omit<CoreConfig, 'T'>, indices: ArrayLike<number>, weights: ArrayLike<number>, b: number, h: number, M: Float64Array): void {
  M.fill(0);
  for (let j = 0; j < indices.length; j++) {
    const S = routedState(state, cfg, indices[j], b, h);
    for (let i = 0; i < M.length; i++) M[i] += weights[j] * S[i];
  }
  if (cfg.shared) {
    const S = sharedState(state, cfg, b, h);
    for (let i = 0; i < M.length; i++) M[i] += S[i];
  }
}

/** docs/spec.md §4, direct form. */
export function momForward(rule: Rule, cfg: CoreConfig, x: CoreInputs, opts: { mix?: RouteMix; initial?: CoreState } = {}): CoreOutputs {
  validateCore(rule, cfg, x, opts.initial);
  const mix = opts.mix ?? 'after';
  if (mix !== 'after' && mix !== 'before') throw new ConfigError(`mix must be 'after' or 'before', got '${String(mix)}'`);
  const state = opts.initial ? copyState(opts.initial) : emptyState(cfg);
  const o = advanceDirect(rule, cfg, x, state, mix);
  return { o, final: state };
}

/**
 * The direct recurrence over x's T tokens, advancing `state` in place; returns o [B, T, H, dv].
 * Inputs must already be validated (momForward and MomState do).
 */
export function advanceDirect(rule: Rule, cfg: CoreConfig, x: CoreInputs, state: CoreState, mix: RouteMix): Float64Array {
  const { B, T, H, E, topk, dk, dv } = cfg;
  const dims = { dk, dv };
  const s = scaleOf(cfg);
  const routing = route(x.logits, B, T, E, topk);
  const o = new Float64Array(B * T * H * dv);
  const q = new Float64Array(dk); // s · q_t
  const oe = new Float64Array(dv); // one memory's read-out
  const M = new Float64Array(dk * dv); // mix before: Σ w S + S_shared

  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      const slots = (b * T + t) * topk; // I_t and w_t live at routing.*[slots .. slots+topk)
      for (let h = 0; h < H; h++) {
        const bth = (b * T + t) * H + h;
        for (let i = 0; i < dk; i++) q[i] = s * x.q[bth * dk + i];
        const out = o.subarray(bth * dv, (bth + 1) * dv);

        // Advance the selected memories (the others do not move) and the shared memory.
        for (let j = 0; j < topk; j++) {
          const e = routing.indices[slots + j];
          rule.step(routedState(state, cfg, e, b, h), tokenInputs(rule, x.memories[e], cfg, b, t, h), dims);
        }
        if (cfg.shared) rule.step(sharedState(state, cfg, b, h), tokenInputs(rule, x.shared as MemoryInputs, cfg, b, t, h), dims);

        if (mix === 'after') {
          // o_t = Σ_{e∈I_t} w_t[e] (S_t^e)ᵀ(s q_t) + (S_t^s)ᵀ(s q_t)
          for (let j = 0; j < topk; j++) {
            const w = routing.weights[slots + j];
            rule.read(routedState(state, cfg, routing.indices[slots + j], b, h), q, dims, oe);
            for (let c = 0; c < dv; c++) out[c] += w * oe[c];
          }
          if (cfg.shared) {
            rule.read(sharedState(state, cfg, b, h), q, dims, oe);
            for (let c = 0; c < dv; c++) out[c] += oe[c];
          }
        } else {
          // o_t = read(M̃_t, s q_t)
          mixStates(state, cfg, routing.indices.subarray(slots, slots + topk), routing.weights.subarray(slots, slots + topk), b, h, M);
          rule.read(M, q, dims, out);
        }
      }
    }
  return o;
}

/**
 * docs/spec.md §4, gathered form, step 1: for each sequence b and memory e, the tokens routed to e in
 * time order ([b][e] -> token indices). Walking t upwards makes the "sort" stable by construction.
 */
export function gatherTokens(routing: Routing, B: number, T: number, E: number): Int32Array[][] {
  const topk = routing.indices.length / (B * T);
  if (!Number.isInteger(topk) || topk < 1)
    throw new ShapeError(`routing.indices must have length B*T*topk (B = ${B}, T = ${T}), got ${routing.indices.length}`);
  for (const e of routing.indices)
    if (!Number.isInteger(e) || e < 0 || e >= E) throw new ShapeError(`routing.indices holds memory ${e}, outside 0..E-1 = 0..${E - 1}`);
  const lists: number[][][] = Array.from({ length: B }, () => Array.from({ length: E }, () => []));
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let j = 0; j < topk; j++) lists[b][routing.indices[(b * T + t) * topk + j]].push(t);
  return lists.map((perMemory) => perMemory.map((tokens) => Int32Array.from(tokens)));
}

function isBuiltin(rule: Rule): rule is BuiltinRule {
  const r = rule as Partial<BuiltinRule>;
  return typeof r.recurrent === 'function' && typeof r.chunked === 'function';
}

/** One memory's (b, h) subsequence `tokens` as a HeadSequence (q scaled by s). */
function gatherSequence(rule: Rule, cfg: CoreConfig, q: Float64Array, mem: MemoryInputs, b: number, h: number, tokens: ArrayLike<number>): HeadSequence {
  const { T, H, dk, dv } = cfg;
  const s = scaleOf(cfg);
  const n = tokens.length;
  const seq: HeadSequence = { n, dk, dv, q: new Float64Array(n * dk), inputs: {} };
  for (const d of rule.inputs) seq.inputs[d.name] = new Float64Array(n * widthOf(d.width, cfg));
  for (let p = 0; p < n; p++) {
    const bth = (b * T + tokens[p]) * H + h;
    for (let i = 0; i < dk; i++) seq.q[p * dk + i] = s * q[bth * dk + i];
    for (const d of rule.inputs) {
      const w = widthOf(d.width, cfg);
      seq.inputs[d.name].set(mem[d.name].subarray(bth * w, (bth + 1) * w), p * w);
    }
  }
  return seq;
}

/** docs/spec.md §4, gathered form; with `chunk`, each subsequence runs through the rule's docs/spec.md §5 chunked form. */
export function momGathered(rule: Rule, cfg: CoreConfig, x: CoreInputs, opts: { initial?: CoreState; chunk?: number } = {}): CoreOutputs {
  validateCore(rule, cfg, x, opts.initial);
  const { B, T, H, E, topk, dv } = cfg;
  if (opts.chunk !== undefined) {
    checkChunk(opts.chunk);
    if (!isBuiltin(rule)) throw new ConfigError(`rule '${rule.name}' has no chunked form (only built-in rules do); leave out the chunk size`);
  }
  const runSequence = (seq: HeadSequence, S: Float64Array): Float64Array =>
    !isBuiltin(rule) ? stepThrough(rule, seq, S) : opts.chunk !== undefined ? rule.chunked(seq, S, opts.chunk) : rule.recurrent(seq, S);

  const state = opts.initial ? copyState(opts.initial) : emptyState(cfg);
  const routing = route(x.logits, B, T, E, topk);
  const lists = gatherTokens(routing, B, T, E);

  // Run every memory over its own subsequence; park its outputs at their tokens' places,
  // memOut[e][b, t, h, :] (unweighted), so that scattering below can use docs/spec.md §4's sum order.
  const memOut = Array.from({ length: E }, () => new Float64Array(B * T * H * dv));
  const sharedOut = cfg.shared ? new Float64Array(B * T * H * dv) : null;
  const allTokens = Int32Array.from({ length: T }, (_, t) => t);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      for (let e = 0; e < E; e++) {
        const tokens = lists[b][e];
        if (tokens.length === 0) continue; // a memory that gets no token keeps its state
        const oe = runSequence(gatherSequence(rule, cfg, x.q, x.memories[e], b, h, tokens), routedState(state, cfg, e, b, h));
        tokens.forEach((t, p) => memOut[e].set(oe.subarray(p * dv, (p + 1) * dv), ((b * T + t) * H + h) * dv));
      }
      if (sharedOut) {
        const os = runSequence(gatherSequence(rule, cfg, x.q, x.shared as MemoryInputs, b, h, allTokens), sharedState(state, cfg, b, h));
        for (let t = 0; t < T; t++) sharedOut.set(os.subarray(t * dv, (t + 1) * dv), ((b * T + t) * H + h) * dv);
      }
    }

  // Scatter: o_t = Σ_{j} w_t[j] · out^{I_t[j]}_t (+ shared), in the slot order of the direct form.
  const o = new Float64Array(B * T * H * dv);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let h = 0; h < H; h++) {
        const at = ((b * T + t) * H + h) * dv;
        for (let j = 0; j < topk; j++) {
          const slot = (b * T + t) * topk + j;
          const w = routing.weights[slot];
          const oe = memOut[routing.indices[slot]];
          for (let c = 0; c < dv; c++) o[at + c] += w * oe[at + c];
        }
        if (sharedOut) for (let c = 0; c < dv; c++) o[at + c] += sharedOut[at + c];
      }
  return { o, final: state };
}
