/**
 * The float64 reference of the GPU backward kernel's contract (gpu/kernels/backward.ts): one rule
 * over gathered variable-length segments (gpu/kernels/types.ts), each segment an independent
 * sequence with its own initial state, per head.
 *
 * With o_p = read(S_p, q_p) the read-out after token p (q already scaled) and the loss
 * L = Σ do·o + Σ dfinal·final, it returns ∂L/∂q, ∂L/∂(every input) and ∂L/∂(initial states),
 * by the same reverse sweep as momBackward: per token in reverse, the read-out's backward at the
 * state after the token, then the rule's reverse step from the state before it.
 */
import type { Dims, Rule, TokenInputs } from '../types.js';
import { widthOf } from '../types.js';
import { readBack, type RuleBackward, type TokenGrads } from './common.js';

export interface SegmentProblem {
  /** segment offsets [S + 1] into the positions */
  cu: Uint32Array;
  H: number;
  dk: number;
  dv: number;
  /** [P, H, dk], scaled */
  q: Float64Array;
  /** one per rule input, [P, H, width] */
  inputs: Float64Array[];
  /** [S, H, dk, dv] */
  state: Float64Array;
  /** [P, H, dv] upstream gradient of the read-outs */
  do: Float64Array;
  /** [S, H, dk, dv] upstream gradient of the final states */
  dfinal: Float64Array;
}

export interface SegmentGradients {
  dq: Float64Array;
  dinputs: Float64Array[];
  /** [S, H, dk, dv] ∂L/∂(initial states) */
  dstate: Float64Array;
}

export function segmentBackward(rule: Rule, back: RuleBackward, p: SegmentProblem): SegmentGradients {
  const { cu, H, dk, dv } = p;
  const dims: Dims = { dk, dv };
  const size = dk * dv;
  const P = cu[cu.length - 1];
  const widths = rule.inputs.map((d) => widthOf(d.width, dims));
  const dq = new Float64Array(P * H * dk);
  const dinputs = widths.map((w) => new Float64Array(P * H * w));
  const dstate = p.dfinal.slice();
  const at = (pos: number, h: number): { x: TokenInputs; dx: TokenGrads } => {
    const row = pos * H + h;
    const x: TokenInputs = {};
    const dx: TokenGrads = {};
    rule.inputs.forEach((d, n) => {
      const w = widths[n];
      x[d.name] = d.width === 'scalar' ? p.inputs[n][row] : p.inputs[n].subarray(row * w, (row + 1) * w);
      dx[d.name] = dinputs[n].subarray(row * w, (row + 1) * w);
    });
    return { x, dx };
  };
  const readOut = back.readBack ? back.readBack.bind(back) : readBack;
  for (let s = 0; s + 1 < cu.length; s++)
    for (let h = 0; h < H; h++) {
      const p0 = cu[s], p1 = cu[s + 1];
      const sb = (s * H + h) * size;
      // states[n]: the state before token p0 + n (states[p1 − p0]: the final state)
      const states = [p.state.slice(sb, sb + size)];
      for (let pos = p0; pos < p1; pos++) {
        const S = states[states.length - 1].slice();
        rule.step(S, at(pos, h).x, dims);
        states.push(S);
      }
      const dS = dstate.subarray(sb, sb + size);
      for (let pos = p1 - 1; pos >= p0; pos--) {
        const row = pos * H + h;
        const { x, dx } = at(pos, h);
        readOut(states[pos - p0 + 1], p.q.subarray(row * dk, (row + 1) * dk), p.do.subarray(row * dv, (row + 1) * dv), dims, dS, dq.subarray(row * dk, (row + 1) * dk));
        back.stepBack(states[pos - p0], x, dS, dx, dims);
      }
    }
  return { dq, dinputs, dstate };
}
