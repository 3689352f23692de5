/**
 * Backward of docs/spec.md §4, the core MoM recurrence in its direct form (forward: momForward in
 * reference/mom.ts), for the built-in rules.
 *
 * For upstream gradients do [B, T, H, dv] (of the outputs) and dfinal (of the final states), with
 * L = Σ do·o + Σ dfinal·final, it returns ∂L/∂ of every input: q, the router logits, each memory's
 * and the shared memory's inputs (same names and layouts as the inputs), and the initial states.
 *
 * Per (b, h), a forward pass recomputes the states and keeps, for every token, the state of each
 * memory it updates before the update (T·(topk + shared)·dk·dv numbers: storing them is fine for a
 * reference). Then, token by token in reverse, with dS^e = ∂L/∂S_t^e starting at dfinal:
 *
 *   read-out   q̂ = s q_t (s the query scale)
 *     mix after:   oe = S_t^eᵀ q̂;  dw_t[e] += ⟨do_t, oe⟩;  dS^e += w q̂ do_tᵀ;  dq̂ += w S_t^e do_t
 *                  shared: dS^s += q̂ do_tᵀ;  dq̂ += S_t^s do_t
 *     mix before:  M̃ = Σ w S_t^e + S_t^s;  dM̃ = q̂ do_tᵀ;  dq̂ = M̃ do_t
 *                  dS^e += w dM̃;  dw_t[e] += ⟨dM̃, S_t^e⟩;  dS^s += dM̃
 *     dq_t = s dq̂
 *   update     for every memory updated at t (e ∈ I_t, and the shared one): the rule's stepBack turns
 *              dS^e into ∂L/∂S_{t-1}^e and adds the token's input gradients. A memory not updated at t
 *              keeps its dS (an inactive memory neither decays nor moves, nor does its gradient).
 *
 * After the sweep dS is ∂L/∂(initial state); the routing weights' gradients dw, summed over heads
 * (every head shares the token's routing), go through reference/backward/router.ts to the logits.
 */
import { ConfigError } from '../errors.js';
import { copyState, emptyState, routedState, scaleOf, sharedState, tokenInputs } from '../mom.js';
import { route } from '../router.js';
import type { CoreConfig, CoreInputs, CoreState, MemoryInputs, RouteMix, Rule } from '../types.js';
import { widthOf } from '../types.js';
import { checkArray, validateCore, validateState } from '../validate.js';
import { frobenius, readBack, type RuleBackward, type TokenGrads } from './common.js';
import { routeBack } from './router.js';
import { backwardOf } from './rules.js';

/** Upstream gradients: of the outputs o [B, T, H, dv] and of the final states. */
export interface Upstream {
  do: Float64Array;
  dfinal: CoreState;
}

/** ∂L/∂ every input of momForward, each in the layout of the input it belongs to. */
export interface MomGradients {
  dq: Float64Array; // [B, T, H, dk], of the unscaled q
  dlogits: Float64Array; // [B, T, E]
  dmemories: MemoryInputs[]; // E entries, name -> [B, T, H, width] as the rule's inputs
  dshared: MemoryInputs | null;
  dinitial: CoreState; // routed [E, B, H, dk, dv], shared [B, H, dk, dv]
}

function zeroInputs(rule: Rule, cfg: CoreConfig): MemoryInputs {
  return Object.fromEntries(rule.inputs.map((d) => [d.name, new Float64Array(cfg.B * cfg.T * cfg.H * widthOf(d.width, cfg))]));
}

/** One memory's input gradients at token (b, t, h): views of their widths (1 for a scalar). */
function tokenGrads(rule: Rule, dmem: MemoryInputs, cfg: CoreConfig, b: number, t: number, h: number): TokenGrads {
  const bth = (b * cfg.T + t) * cfg.H + h;
  const g: TokenGrads = {};
  for (const d of rule.inputs) {
    const w = widthOf(d.width, cfg);
    g[d.name] = dmem[d.name].subarray(bth * w, (bth + 1) * w);
  }
  return g;
}

/**
 * docs/spec.md §4 backward. `back` is the rule's reverse step (default: the built-in one for `rule`);
 * the properties' tests pass a deliberately wrong one to see it caught.
 */
export function momBackward(
  rule: Rule,
  cfg: CoreConfig,
  x: CoreInputs,
  opts: { mix?: RouteMix; initial?: CoreState },
  up: Upstream,
  back: RuleBackward = backwardOf(rule),
): MomGradients {
  validateCore(rule, cfg, x, opts.initial);
  const mix = opts.mix ?? 'after';
  if (mix !== 'after' && mix !== 'before') throw new ConfigError(`mix must be 'after' or 'before', got '${String(mix)}'`);
  const { B, T, H, E, topk, dk, dv } = cfg;
  if (typeof up !== 'object' || up === null) throw new ConfigError('upstream gradients must be { do, dfinal }');
  checkArray(up.do, B * T * H * dv, 'upstream do', `[B, T, H, dv] = [${B}, ${T}, ${H}, ${dv}]`);
  validateState(cfg, up.dfinal, 'upstream dfinal');

  const dims = { dk, dv };
  const size = dk * dv;
  // The read-out's backward: the rule's own when its read-out is not o = Sᵀq (rules written as math).
  const readOut: typeof readBack = (S, q, g, d, dSacc, dqacc) => (back.readBack ? back.readBack(S, q, g, d, dSacc, dqacc) : readBack(S, q, g, d, dSacc, dqacc));
  const s = scaleOf(cfg);
  const routing = route(x.logits, B, T, E, topk);
  const initial = opts.initial ?? emptyState(cfg);
  const dq = new Float64Array(B * T * H * dk);
  const dmemories = Array.from({ length: E }, () => zeroInputs(rule, cfg));
  const dshared = cfg.shared ? zeroInputs(rule, cfg) : null;
  const dinitial = copyState(up.dfinal); // the reverse state dS, from ∂L/∂S_T down to ∂L/∂S_0, in place
  const dw = new Float64Array(B * T * topk);

  const qhat = new Float64Array(dk); // s q_t
  const dqhat = new Float64Array(dk);
  const oe = new Float64Array(dv);
  const g = new Float64Array(dv);
  const M = new Float64Array(size);
  const dM = new Float64Array(size);

  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      // Forward: the current states, and each updated memory's state before its update.
      const cur = Array.from({ length: E }, (_, e) => routedState(initial, cfg, e, b, h).slice());
      const curShared = cfg.shared ? sharedState(initial, cfg, b, h).slice() : null;
      const before: Float64Array[][] = []; // [t][j]: memory I_t[j] before token t
      const beforeShared: Float64Array[] = [];
      for (let t = 0; t < T; t++) {
        const slots = (b * T + t) * topk;
        before.push([]);
        for (let j = 0; j < topk; j++) {
          const e = routing.indices[slots + j];
          before[t].push(cur[e].slice());
          rule.step(cur[e], tokenInputs(rule, x.memories[e], cfg, b, t, h), dims);
        }
        if (curShared) {
          beforeShared.push(curShared.slice());
          rule.step(curShared, tokenInputs(rule, x.shared as MemoryInputs, cfg, b, t, h), dims);
        }
      }

      // Reverse: cur holds S_t (after token t) while token t is processed.
      const dS = Array.from({ length: E }, (_, e) => routedState(dinitial, cfg, e, b, h));
      const dSshared = cfg.shared ? sharedState(dinitial, cfg, b, h) : null;
      for (let t = T - 1; t >= 0; t--) {
        const slots = (b * T + t) * topk;
        const bth = (b * T + t) * H + h;
        for (let i = 0; i < dk; i++) qhat[i] = s * x.q[bth * dk + i];
        const dO = up.do.subarray(bth * dv, (bth + 1) * dv);
        dqhat.fill(0);

        if (mix === 'after') {
          for (let j = 0; j < topk; j++) {
            const e = routing.indices[slots + j];
            const w = routing.weights[slots + j];
            rule.read(cur[e], qhat, dims, oe);
            for (let c = 0; c < dv; c++) {
              dw[slots + j] += dO[c] * oe[c];
              g[c] = w * dO[c]; // ∂L/∂oe
            }
            readOut(cur[e], qhat, g, dims, dS[e], dqhat);
          }
          if (curShared && dSshared) readOut(curShared, qhat, dO, dims, dSshared, dqhat);
        } else {
          M.fill(0);
          for (let j = 0; j < topk; j++) {
            const w = routing.weights[slots + j];
            const S = cur[routing.indices[slots + j]];
            for (let i = 0; i < size; i++) M[i] += w * S[i];
          }
          if (curShared) for (let i = 0; i < size; i++) M[i] += curShared[i];
          dM.fill(0);
          readOut(M, qhat, dO, dims, dM, dqhat);
          for (let j = 0; j < topk; j++) {
            const e = routing.indices[slots + j];
            const w = routing.weights[slots + j];
            for (let i = 0; i < size; i++) dS[e][i] += w * dM[i];
            dw[slots + j] += frobenius(dM, cur[e], size);
          }
          if (dSshared) for (let i = 0; i < size; i++) dSshared[i] += dM[i];
        }
        for (let i = 0; i < dk; i++) dq[bth * dk + i] = s * dqhat[i];

        // Through the updates of token t, back to the states after token t − 1.
        for (let j = 0; j < topk; j++) {
          const e = routing.indices[slots + j];
          back.stepBack(before[t][j], tokenInputs(rule, x.memories[e], cfg, b, t, h), dS[e], tokenGrads(rule, dmemories[e], cfg, b, t, h), dims);
          cur[e].set(before[t][j]);
        }
        if (curShared && dSshared && dshared) {
          back.stepBack(beforeShared[t], tokenInputs(rule, x.shared as MemoryInputs, cfg, b, t, h), dSshared, tokenGrads(rule, dshared, cfg, b, t, h), dims);
          curShared.set(beforeShared[t]);
        }
      }
    }

  return { dq, dlogits: routeBack(routing, dw, B, T, E), dmemories, dshared, dinitial };
}
