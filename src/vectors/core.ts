/**
 * The core form of `momlab vectors` for any rule (docs/vectors.md): the rule's own inputs in fla's
 * layout, the float64 reference's outputs and final states, and with `grad` the reference backward's
 * gradients (reference/backward) for random upstream gradients. Options: mix before/after, a random
 * initial state (written as an input), and variable-length batches as fla's `cu_seqlens` (B = 1,
 * sequences concatenated along T, every sequence run on its own from its own initial state).
 */
import { ConfigError } from '../../reference/errors.js';
import { momBackward } from '../../reference/backward/index.js';
import { momForward } from '../../reference/mom.js';
import { mulberry32, sampleCoreInputs } from '../../reference/sample.js';
import type { CoreConfig, CoreInputs, CoreState, InputRange, MemoryInputs, RouteMix, Rule } from '../../reference/types.js';
import { widthOf } from '../../reference/types.js';
import type { TensorIn } from '../io/safetensors.js';

export type InitialState = 'zero' | 'random';

/** One core problem: `cfg.B` sequences of `cfg.T` tokens, or (with `lengths`) B = 1 and T = Σ lengths. */
export interface CoreSpec {
  cfg: CoreConfig;
  lengths?: number[];
  mix: RouteMix;
  initial: InitialState;
  grad: boolean;
}

export interface CoreVectors {
  inputs: Record<string, TensorIn>;
  expected: Record<string, TensorIn>;
}

export const f32 = (a: Float64Array): Float64Array => a.map(Math.fround);

/** Uniform values in (-1, 1) from a seeded stream (upstream gradients, random initial states). */
function uniform(n: number, seed: number, scale = 1): Float64Array {
  const rand = mulberry32(seed);
  return Float64Array.from({ length: n }, () => Math.fround(scale * (2 * rand() - 1)));
}

/** Rows [from, to) of a [rows, ...] array with `per` values per row. */
const rows = (a: Float64Array, per: number, from: number, to: number) => a.subarray(from * per, to * per);

/** A state [E, B, H, dk, dv] (+ shared [B, H, dk, dv]) for sequences [from, to) of it. */
function stateSlice(s: CoreState, E: number, B: number, per: number, from: number, to: number): CoreState {
  const routed = new Float64Array(E * (to - from) * per);
  for (let e = 0; e < E; e++) routed.set(s.routed.subarray((e * B + from) * per, (e * B + to) * per), e * (to - from) * per);
  return { routed, shared: s.shared ? s.shared.slice(from * per, to * per) : null };
}

/** Write sequence n's state (B = 1) into the stacked [E, N, H, dk, dv] state. */
function stateInto(dst: CoreState, src: CoreState, E: number, N: number, per: number, n: number): void {
  for (let e = 0; e < E; e++) dst.routed.set(src.routed.subarray(e * per, (e + 1) * per), (e * N + n) * per);
  if (dst.shared && src.shared) dst.shared.set(src.shared, n * per);
}

/** Tensors `${prefix}.${e}` [N, H, dk, dv] for each memory, and `.shared`. */
function stateTensors(prefix: string, s: CoreState, E: number, shape: number[]): Record<string, TensorIn> {
  const size = shape.reduce((a, b) => a * b, 1);
  const out: Record<string, TensorIn> = {};
  for (let e = 0; e < E; e++) out[`${prefix}.${e}`] = { shape, data: s.routed.subarray(e * size, (e + 1) * size) };
  if (s.shared) out[`${prefix}.shared`] = { shape, data: s.shared };
  return out;
}

/** The memories' input names, e → `0..E-1` and `shared`. */
const slots = (x: { memories: MemoryInputs[]; shared: MemoryInputs | null }): [string, MemoryInputs][] => [
  ...x.memories.map((m, e): [string, MemoryInputs] => [String(e), m]),
  ...(x.shared ? [['shared', x.shared] as [string, MemoryInputs]] : []),
];

/** Input names whose tensors (core.h0.{e}, core.dht.{e}, and the gradient core.dh0.{e}) the vectors use for states. */
const RESERVED = ['h0', 'dht'];

/** Refuse a rule whose input would be written under the name of a state tensor. */
export function checkInputNames(rule: Rule): void {
  const bad = rule.inputs.find((d) => RESERVED.includes(d.name));
  if (bad) throw new ConfigError(`momlab vectors: rule '${rule.name}' has an input named '${bad.name}', which the vectors use for a state (core.${bad.name}.{e}); rename the input`);
}

/**
 * Sample (seeded), round to float32 and run the reference (and its backward with `grad`): the core
 * vectors. `edit` changes the sampled inputs before rounding (the edge suite's cases).
 */
export function coreVectors(rule: Rule, spec: CoreSpec, seed: number, edit?: (x: CoreInputs, cfg: CoreConfig) => void): CoreVectors {
  const { cfg, mix } = spec;
  const { B, T, H, E, dk, dv } = cfg;
  const lengths = spec.lengths ?? null;
  const N = lengths ? lengths.length : B; // sequences, and the leading size of every state
  const per = H * dk * dv;
  const s = sampleCoreInputs(rule, cfg, seed);
  edit?.(s, cfg);
  const round = (m: MemoryInputs) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, f32(v)]));
  const x: CoreInputs = { q: f32(s.q), logits: f32(s.logits), memories: s.memories.map(round), shared: s.shared ? round(s.shared) : null };
  const stateSize = (E + (cfg.shared ? 1 : 0)) * N * per;
  const h0: CoreState | undefined = spec.initial === 'random' ? split(uniform(stateSize, seed ^ 0x1417, 0.5), E, N * per, cfg.shared) : undefined;
  const up = spec.grad ? { do: uniform(B * T * H * dv, seed ^ 0xd0d0), dfinal: split(uniform(stateSize, seed ^ 0xd47), E, N * per, cfg.shared) } : null;

  // The sequences to run on their own: the whole batch, or each of the concatenated ones.
  const bounds = lengths ? lengths.map((_, n) => lengths.slice(0, n).reduce((a, b) => a + b, 0)) : [0];
  const o = new Float64Array(B * T * H * dv);
  const final = split(new Float64Array(stateSize), E, N * per, cfg.shared);
  const grads = spec.grad
    ? { dq: new Float64Array(x.q.length), dlogits: new Float64Array(x.logits.length), dmem: slots(x).map(([e, m]) => [e, Object.fromEntries(Object.entries(m).map(([k, v]) => [k, new Float64Array(v.length)]))] as [string, MemoryInputs]), dh0: split(new Float64Array(stateSize), E, N * per, cfg.shared) }
    : null;
  for (let n = 0; n < bounds.length; n++) {
    const from = bounds[n];
    const len = lengths ? lengths[n] : T;
    const sub: CoreConfig = lengths ? { ...cfg, B: 1, T: len } : cfg;
    const sx: CoreInputs = lengths ? sliceInputs(rule, cfg, x, from, from + len) : x;
    const initial = h0 && lengths ? stateSlice(h0, E, N, per, n, n + 1) : h0;
    const r = momForward(rule, sub, sx, { mix, initial });
    o.set(r.o, from * H * dv);
    if (lengths) stateInto(final, r.final, E, N, per, n);
    else Object.assign(final, r.final);
    if (up && grads) {
      const u = lengths ? { do: rows(up.do, H * dv, from, from + len), dfinal: stateSlice(up.dfinal, E, N, per, n, n + 1) } : up;
      const g = momBackward(rule, sub, sx, { mix, initial }, u);
      grads.dq.set(g.dq, from * H * dk);
      grads.dlogits.set(g.dlogits, from * E);
      slots({ memories: g.dmemories, shared: g.dshared }).forEach(([, m], i) => {
        for (const d of rule.inputs) grads.dmem[i][1][d.name].set(m[d.name], from * H * widthOf(d.width, cfg));
      });
      if (lengths) stateInto(grads.dh0, g.dinitial, E, N, per, n);
      else Object.assign(grads.dh0, g.dinitial);
    }
  }

  const stateShape = [N, H, dk, dv];
  const shapeOf = (w: number) => (w === 1 ? [B, T, H] : [B, T, H, w]);
  const inputs: Record<string, TensorIn> = { 'core.q': { shape: [B, T, H, dk], data: x.q }, 'core.router_logits': { shape: [B, T, E], data: x.logits } };
  for (const [e, m] of slots(x)) for (const d of rule.inputs) inputs[`core.${d.name}.${e}`] = { shape: shapeOf(widthOf(d.width, cfg)), data: m[d.name] };
  if (lengths) inputs['core.cu_seqlens'] = { shape: [N + 1], data: Float64Array.from([...bounds, T]) };
  if (h0) Object.assign(inputs, stateTensors('core.h0', h0, E, stateShape));
  if (up) Object.assign(inputs, { 'core.do': { shape: [B, T, H, dv], data: up.do }, ...stateTensors('core.dht', up.dfinal, E, stateShape) });

  const expected: Record<string, TensorIn> = { 'core.o': { shape: [B, T, H, dv], data: o }, ...stateTensors('core.final_state', final, E, stateShape) };
  if (grads) {
    expected['core.dq'] = { shape: [B, T, H, dk], data: grads.dq };
    expected['core.drouter_logits'] = { shape: [B, T, E], data: grads.dlogits };
    for (const [e, m] of grads.dmem) for (const d of rule.inputs) expected[`core.d${d.name}.${e}`] = { shape: shapeOf(widthOf(d.width, cfg)), data: m[d.name] };
    Object.assign(expected, stateTensors('core.dh0', grads.dh0, E, stateShape));
  }
  return { inputs, expected };
}

/** [E·size | shared size] values as a CoreState. */
function split(a: Float64Array, E: number, size: number, shared: boolean): CoreState {
  return { routed: a.subarray(0, E * size), shared: shared ? a.subarray(E * size, (E + 1) * size) : null };
}

/** Tokens [from, to) of a B = 1 batch as its own B = 1 problem. */
function sliceInputs(rule: Rule, cfg: CoreConfig, x: CoreInputs, from: number, to: number): CoreInputs {
  const mem = (m: MemoryInputs): MemoryInputs => Object.fromEntries(rule.inputs.map((d) => [d.name, rows(m[d.name], cfg.H * widthOf(d.width, cfg), from, to)]));
  return { q: rows(x.q, cfg.H * cfg.dk, from, to), logits: rows(x.logits, cfg.E, from, to), memories: x.memories.map(mem), shared: x.shared ? mem(x.shared) : null };
}

/**
 * What coreVectors allocates, as float64: the inputs (sampled and rounded), outputs, states, and
 * with `grad` the upstream and input gradients and the backward's per-token saved states (x2 headroom).
 */
export function coreVectorsBytes(rule: Rule, spec: CoreSpec): number {
  const { B, T, H, E, topk, dk, dv } = spec.cfg;
  const slotsN = E + (spec.cfg.shared ? 1 : 0);
  const widths = rule.inputs.reduce((a, d) => a + widthOf(d.width, spec.cfg), 0);
  const perToken = H * dk + E + slotsN * H * widths + H * dv;
  const states = 4 * slotsN * (spec.lengths?.length ?? B) * H * dk * dv;
  const gradBytes = spec.grad ? 2 * B * T * perToken + states + T * (topk + 1) * dk * dv : 0;
  return 2 * 8 * (3 * B * T * perToken + 3 * states + gradBytes);
}

/** A declared range as text (the manifest's JSON cannot hold an infinite bound). */
export function rangeText(r: InputRange): string {
  if (r === 'logdecay') return '<= 0';
  if (r === 'unit') return '(0, 1)';
  if (typeof r !== 'object') return r;
  return `${r.loOpen ? '(' : '['}${r.lo}, ${r.hi}${r.hiOpen ? ')' : ']'}`;
}
