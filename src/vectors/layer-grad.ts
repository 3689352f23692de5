/**
 * Layer gradients for `momlab vectors --config --grad` (docs/vectors.md "Layer gradients"): the
 * reference has no layer backward, so for L = Σ dy · y it writes directional derivatives
 * <∂L/∂X, dir_X> for the hidden states and every weight X, by central differences of the float64
 * layer forward with Richardson extrapolation. An implementation checks its autograd gradients g
 * against them as Σ g · dir.
 *
 * Per tensor X (value X0, direction d, f(t) = L with X = X0 + t·d):
 *   D(h) = (f(h) − f(−h)) / 2h,  R(h) = (4·D(h/2) − D(h)) / 3,
 *   jvp = R(h/2), its error estimate |R(h) − R(h/2)| (R(h)'s truncation is 16x R(h/2)'s).
 * h = H0 · rms(X0) / rms(d). The top-k selection must not change over [−h, h]; the logits are
 * linear in t, so the same selection at −h, 0 and +h means the same on the whole interval.
 */
import { ConfigError } from '../../reference/errors.js';
import { layerOutput, layerReadout } from '../../reference/layer.js';
import { layerDims, layerParamShapes, type LayerConfig, type LayerWeights } from '../../reference/layer-config.js';
import { route } from '../../reference/router.js';
import { mulberry32 } from '../../reference/sample.js';
import type { TensorIn } from '../io/safetensors.js';

/** The relative step: Richardson's O(h⁴) truncation against float64 rounding of O(ε/h) balances near ε^(1/5) ≈ 6e-4. */
export const H0 = 1e-3;
/** Candidate directions per tensor: the one with the largest |jvp| is kept, so that a jvp is never a sum that cancelled by chance. */
export const CANDIDATES = 4;
/** The estimated finite-difference error (relative) above which the vectors are refused: far below verify's 1e-4. */
export const MAX_FD_ERROR = 1e-7;
/** A jvp that moves L by less than this, relative (see sensitivity), is rounding: y does not depend on the tensor, and it is not written. */
export const NEGLIGIBLE = 1e-9;
/** Halvings of h tried when the routing changes within ±h. */
const MAX_HALVINGS = 30;
/** Stream seeds (xor --seed), each distinct from the other vectors streams (0x5eed, 0x1417, 0xd0d0, 0xd47). */
const DY_STREAM = 0x1a7e_0d1d;
const DIR_STREAM = 0x1a7e_0d14;

export interface LayerGradProblem {
  config: LayerConfig;
  /** float32-rounded weights and hidden states, as stored */
  weights: LayerWeights;
  hidden: Float64Array;
  B: number;
  T: number;
  /** left padding: row b holds its sequence on its last lengths[b] positions */
  lengths?: number[];
}

export interface LayerGrad {
  inputs: Record<string, TensorIn>;
  expected: Record<string, TensorIn>;
  /** per tensor: the jvp, its error estimate, the step used and how its f was evaluated */
  report: ({ name: string } & Jvp)[];
  /** jvp name -> why it is not written (L does not depend on the tensor beyond rounding) */
  skipped: Record<string, string>;
  worstRelError: number;
}

/** How f(t) is evaluated: whole layer, one memory slot's read-out replaced, or only the output stage (o fixed). */
type Evaluation = 'full' | 'slot' | 'output';

/** Uniform values strictly inside (-1, 1), rounded to float32 (they are stored). */
export function uniformOpen(n: number, rand: () => number): Float64Array {
  return Float64Array.from({ length: n }, () => Math.fround(2 * ((Math.floor(rand() * 4294967296) + 0.5) / 4294967296) - 1));
}

const rms = (a: Float64Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);

/** The tensors perturbed, in the order their directions are drawn: the hidden states, then the weights in state-dict order. */
export function layerGradNames(c: LayerConfig): string[] {
  return ['hidden_states', ...Object.keys(layerParamShapes(c))];
}

/** The slot whose read-out alone depends on a weight (k/v/b/a of one memory), or null. */
function slotOf(c: LayerConfig, name: string): number | null {
  const m = /^(k|v|b|a)_proj\.(\d+)\.weight$/.exec(name);
  if (m) return Number(m[2]);
  if (/^shared_[kvba]\.weight$/.test(name) && !c.single_kv_proj) return c.num_memories;
  return null;
}

const OUTPUT_STAGE = ['g_proj.weight', 'o_norm.weight', 'o_proj.weight'];

/** The mixed read-out o [B, T, H, dv]: the batch at once, or each left-padded row alone (0 at padding). */
function readout(p: LayerGradProblem, w: LayerWeights, x: Float64Array, slots?: number[]): Float64Array {
  const { D, H, dv } = layerDims(p.config);
  if (!p.lengths) return layerReadout(p.config, w, x, p.B, p.T, { slots }).o;
  const o = new Float64Array(p.B * p.T * H * dv);
  p.lengths.forEach((L, b) => {
    const start = b * p.T + p.T - L;
    o.set(layerReadout(p.config, w, x.subarray(start * D, (b + 1) * p.T * D), 1, L, { slots }).o, start * H * dv);
  });
  return o;
}

/** Σ dy · y, compensated (Neumaier) so that the sum adds no rounding beyond y's own. */
function loss(p: LayerGradProblem, w: LayerWeights, x: Float64Array, o: Float64Array, dy: Float64Array): number {
  const y = layerOutput(p.config, w, x, o, p.B * p.T);
  let s = 0;
  let comp = 0;
  for (let i = 0; i < y.length; i++) {
    const v = dy[i] * y[i];
    const t = s + v;
    comp += Math.abs(s) >= Math.abs(v) ? s - t + v : v - t + s;
    s = t;
  }
  return s + comp;
}

/** The selected memories per (b, t) as sorted keys, at the positions that hold a token. */
function selection(p: LayerGradProblem, w: LayerWeights, x: Float64Array): string[] {
  const { D, E } = layerDims(p.config);
  const n = p.B * p.T;
  const logits = new Float64Array(n * E);
  const gate = w['gate.weight'];
  for (let r = 0; r < n; r++)
    for (let e = 0; e < E; e++) {
      let z = 0;
      for (let d = 0; d < D; d++) z += x[r * D + d] * gate[e * D + d];
      logits[r * E + e] = z;
    }
  const k = p.config.topk;
  const rt = route(logits, p.B, p.T, E, k);
  const out: string[] = [];
  for (let r = 0; r < n; r++) {
    if (p.lengths && r % p.T < p.T - p.lengths[Math.floor(r / p.T)]) continue;
    out.push(Array.from(rt.indices.subarray(r * k, (r + 1) * k)).sort((a, b) => a - b).join(','));
  }
  return out;
}

const same = (a: string[], b: string[]) => a.length === b.length && a.every((v, i) => v === b[i]);

export interface Jvp {
  jvp: number;
  fdError: number;
  relError: number;
  h: number;
  evaluation: Evaluation;
}

/**
 * Directional derivatives of L = Σ dy · y for one problem: `central` is one D(h) (h halved while the
 * routing changes), `jvp` the Richardson value along a direction, from a `central` already taken or afresh.
 */
export function jvpEvaluator(p: LayerGradProblem, dy: Float64Array) {
  const c = p.config;
  const base = readout(p, p.weights, p.hidden);
  const baseSelection = selection(p, p.weights, p.hidden);
  const slotBase = new Map<number, Float64Array>();
  const tensor = (name: string): Float64Array => {
    const x0 = name === 'hidden_states' ? p.hidden : p.weights[name];
    if (!x0) throw new ConfigError(`layer gradient: no tensor '${name}' (known: ${layerGradNames(c).join(', ')})`);
    return x0;
  };
  const evaluationOf = (name: string): Evaluation => (OUTPUT_STAGE.includes(name) ? 'output' : slotOf(c, name) !== null ? 'slot' : 'full');

  /** f(t) along dir; null when `check` and the top-k selection differs from the unperturbed one. */
  const f = (name: string, dir: Float64Array, t: number, check: boolean): number | null => {
    const x0 = tensor(name);
    const moved = x0.map((v, i) => v + t * dir[i]);
    const w = name === 'hidden_states' ? p.weights : { ...p.weights, [name]: moved };
    const x = name === 'hidden_states' ? moved : p.hidden;
    if (check && (name === 'hidden_states' || name === 'gate.weight') && !same(selection(p, w, x), baseSelection)) return null;
    const evaluation = evaluationOf(name);
    let o = base;
    if (evaluation === 'slot') {
      const slot = slotOf(c, name)!;
      if (!slotBase.has(slot)) slotBase.set(slot, readout(p, p.weights, p.hidden, [slot]));
      const part = readout(p, w, x, [slot]);
      const old = slotBase.get(slot)!;
      o = base.map((v, i) => v - old[i] + part[i]);
    } else if (evaluation === 'full') o = readout(p, w, x);
    return loss(p, w, x, o, dy);
  };

  /** D(h) from h = factor · H0 · rms(X) / rms(dir), halved until the selection holds at ±h (and so on all of [−h, h]). */
  const central = (name: string, dir: Float64Array, factor = 1): { d: number; h: number } => {
    const x0 = tensor(name);
    const h0 = (factor * H0 * (rms(x0) > 0 ? rms(x0) : 1)) / rms(dir);
    for (let h = h0, i = 0; i <= MAX_HALVINGS; i++, h /= 2) {
      const plus = f(name, dir, h, true);
      const minus = plus === null ? null : f(name, dir, -h, true);
      if (plus !== null && minus !== null) return { d: (plus - minus) / (2 * h), h };
    }
    throw new ConfigError(`layer gradient along '${name}': the top-k routing changes even within a step of ${(h0 * 2 ** -MAX_HALVINGS).toExponential(2)} (a near-tie in the router logits); try another --seed`);
  };

  const jvp = (name: string, dir: Float64Array, first = central(name, dir)): Jvp => {
    const { d: d1, h } = first;
    const d2 = (f(name, dir, h / 2, false)! - f(name, dir, -h / 2, false)!) / h;
    const d4 = (f(name, dir, h / 4, false)! - f(name, dir, -h / 4, false)!) / (h / 2);
    const r1 = (4 * d2 - d1) / 3;
    const r2 = (4 * d4 - d2) / 3;
    const fdError = Math.abs(r1 - r2);
    // a tensor that y does not depend on (a memory that gets no token) gives exactly 0 at every step
    const relError = fdError === 0 ? 0 : fdError / Math.abs(r2);
    return { jvp: r2, fdError, relError, h, evaluation: evaluationOf(name) };
  };
  /**
   * How much L moves along dir, relative to its own size: |jvp| · rms(X) / rms(dir) / Σ|dy · y|.
   * Float64 rounding alone gives about 1e-13 here, so a value under NEGLIGIBLE means y does not depend on X along dir.
   */
  const yBase = layerOutput(c, p.weights, p.hidden, base, p.B * p.T);
  const size = yBase.reduce((a, v, i) => a + Math.abs(v * dy[i]), 0);
  const sensitivity = (name: string, dir: Float64Array, jvp: number): number => {
    const x0 = tensor(name);
    return (Math.abs(jvp) * (rms(x0) > 0 ? rms(x0) : 1)) / rms(dir) / size;
  };
  return { central, jvp, sensitivity };
}

/**
 * The layer gradient vectors: dy, a direction per tensor, and the jvp along it. Refuses (one line,
 * naming the tensor) when the routing changes for every step tried or the error estimate is too large.
 */
export function layerGrad(p: LayerGradProblem, seed: number): LayerGrad {
  const { D } = layerDims(p.config);
  const dy = uniformOpen(p.B * p.T * D, mulberry32((seed ^ DY_STREAM) >>> 0));
  const dirRand = mulberry32((seed ^ DIR_STREAM) >>> 0);
  const ev = jvpEvaluator(p, dy);
  const shapes: Record<string, number[]> = { hidden_states: [p.B, p.T, D], ...layerParamShapes(p.config) };
  const inputs: Record<string, TensorIn> = { 'layer.dy': { shape: [p.B, p.T, D], data: dy } };
  const expected: Record<string, TensorIn> = {};
  const report: LayerGrad['report'] = [];
  const skipped: Record<string, string> = {};
  for (const name of layerGradNames(p.config)) {
    const n = shapes[name].reduce((a, b) => a * b, 1);
    const candidates = Array.from({ length: CANDIDATES }, () => uniformOpen(n, dirRand));
    const first = candidates.map((dir) => ev.central(name, dir));
    const k = first.reduce((best, r, i) => (Math.abs(r.d) > Math.abs(first[best].d) ? i : best), 0);
    let r = ev.jvp(name, candidates[k], first[k]);
    const moved = ev.sensitivity(name, candidates[k], r.jvp);
    if (moved < NEGLIGIBLE) {
      // a memory that gets no token, or the gate when single_kv_proj and topk = num_memories make every memory the same: an implementation's value is rounding too
      skipped[`layer.jvp.${name}`] = `L moves by ${moved.toExponential(1)} of its size along the best of ${CANDIDATES} directions: rounding, y does not depend on ${name}`;
      continue;
    }
    // too large an estimate: a smaller step (truncation-bound, e.g. a conv weight) or a larger one (rounding-bound) may do better
    for (const factor of [1 / 4, 1 / 16, 4]) {
      if (r.relError <= MAX_FD_ERROR) break;
      const again = ev.jvp(name, candidates[k], ev.central(name, candidates[k], factor));
      if (again.relError < r.relError) r = again;
    }
    if (!(r.relError <= MAX_FD_ERROR))
      throw new ConfigError(`layer gradient along '${name}': the estimated finite-difference error is ${r.relError.toExponential(2)} relative, over ${MAX_FD_ERROR}; try another --seed`);
    inputs[`layer.dir.${name}`] = { shape: shapes[name], data: candidates[k] };
    expected[`layer.jvp.${name}`] = { shape: [1], data: Float64Array.of(r.jvp) };
    report.push({ name, ...r });
  }
  return { inputs, expected, report, skipped, worstRelError: Math.max(0, ...report.map((r) => r.relError)) };
}

/**
 * What layerGrad allocates beyond the layer forward, as float64: dy, the stored and candidate
 * directions, a perturbed copy of each tensor, and the base and per-slot read-outs (x2 headroom).
 */
export function layerGradBytes(c: LayerConfig, B: number, T: number): number {
  const { D, H, dv, E } = layerDims(c);
  const sizes = [B * T * D, ...Object.values(layerParamShapes(c)).map((s) => s.reduce((a, b) => a * b, 1))];
  const total = sizes.reduce((a, b) => a + b, 0);
  const largest = Math.max(...sizes);
  const o = B * T * H * dv;
  return 2 * 8 * (B * T * D + total + (CANDIDATES + 2) * largest + (E + 4) * o);
}
