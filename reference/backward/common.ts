/**
 * What every rule's backward step shares (docs/spec.md §3, §4): the shape of a reverse step and the
 * backward of the read-out o = Sᵀq.
 *
 * The loss is L = Σ do·o + Σ dS_T·S_T for upstream gradients do (of the outputs) and dS_T (of the
 * final states); every gradient here is ∂L/∂(that quantity).
 */
import type { Dims, TokenInputs } from '../types.js';

/** One token's input gradients for one memory: name -> view of its width (1 for a scalar gate). */
export type TokenGrads = Record<string, Float64Array>;

export interface RuleBackward {
  /** the forward rule's name (reference/rules/<name>.ts) */
  readonly name: string;
  /**
   * The reverse of one forward step S_t = f(S_{t-1}; x_t). Given S = S_{t-1} (read only) and
   * dS = ∂L/∂S_t, overwrites dS with ∂L/∂S_{t-1} (through this step only) and adds ∂L/∂x_t into dx.
   */
  stepBack(S: Float64Array, x: TokenInputs, dS: Float64Array, dx: TokenGrads, dims: Dims): void;
  /**
   * The backward of the rule's read-out o = read(S, q), with readBack's contract below; absent for
   * the built-in rules, whose read-out is o = Sᵀq (`readBack`).
   */
  readBack?(S: Float64Array, q: Float64Array, g: Float64Array, dims: Dims, dS: Float64Array, dq: Float64Array): void;
}

/**
 * Backward of oe = Sᵀq for an upstream gradient g of oe:  dS += q gᵀ,  dq += S g.
 * S is dk×dv row-major (S[i*dv + j]).
 */
export function readBack(S: Float64Array, q: Float64Array, g: Float64Array, { dk, dv }: Dims, dS: Float64Array, dq: Float64Array): void {
  for (let i = 0; i < dk; i++) {
    const row = i * dv;
    let acc = 0;
    for (let j = 0; j < dv; j++) {
      dS[row + j] += q[i] * g[j];
      acc += S[row + j] * g[j];
    }
    dq[i] += acc;
  }
}

/** ⟨A, B⟩ = Σ A_ij B_ij over the first n entries. */
export function frobenius(A: Float64Array, B: Float64Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += A[i] * B[i];
  return s;
}
