import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backwardOf, momBackward, type RuleBackward } from '../reference/backward/index.js';
import { getRule, RULE_NAMES } from '../reference/rules/index.js';
import type { CoreInputs, CoreState, Dims, Rule, TokenInputs } from '../reference/types.js';
import { compareArrays, SPEC_ATOL } from '../properties/compare.js';
import { serializeSafetensors, type TensorIn } from '../src/io/safetensors.js';
import { TOLERANCE, groupOf } from '../src/cli/verify.js';
import { momlab, readCoreFolder } from './vectors-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'momlab-grad-'));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)];
const int = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

/** --grad vectors for a random built-in rule and awkward random sizes. */
async function gradVectors(name: string, extra: string[] = []) {
  const rule = pick(RULE_NAMES);
  const E = int(2, 4);
  const args = ['--rule', rule, '--heads', String(int(1, 3)), '--memories', String(E), '--topk', String(int(1, E)), '--dk', String(int(2, 7)), '--dv', String(int(2, 6)), '--mix', pick(['after', 'before']), '--initial-state', pick(['zero', 'random']), '--grad', '--seed', String(int(0, 2 ** 31)), ...extra];
  const out = join(dir, name);
  const r = await momlab('vectors', ...args, '--out', out);
  if (r.code !== 0) throw new Error(r.out);
  return { out, args: args.join(' '), v: readCoreFolder(out) };
}

/** momBackward on a folder's stored inputs and upstream gradients (a batch without --lengths). */
function recompute(v: ReturnType<typeof readCoreFolder>, rule: Rule, back: RuleBackward = backwardOf(rule)) {
  const up = { do: v.inputs.get('core.do')!.data, dfinal: v.state('dht')! };
  return momBackward(rule, v.cfg, v.x, { mix: v.manifest.core.mix, initial: v.state('h0') }, up, back);
}

/** Tensor name -> momBackward's array for it. */
function gradTensors(v: ReturnType<typeof readCoreFolder>, rule: Rule, g: ReturnType<typeof momBackward>): Record<string, Float64Array> {
  const out: Record<string, Float64Array> = { 'core.dq': g.dq, 'core.drouter_logits': g.dlogits };
  const per = v.cfg.B * v.cfg.H * v.cfg.dk * v.cfg.dv;
  v.slots.forEach((e, i) => {
    const mem = i < v.cfg.E ? g.dmemories[i] : g.dshared!;
    for (const d of rule.inputs) out[`core.d${d.name}.${e}`] = mem[d.name];
    out[`core.dh0.${e}`] = i < v.cfg.E ? g.dinitial.routed.subarray(i * per, (i + 1) * per) : g.dinitial.shared!;
  });
  return out;
}

const round32 = (a: Float64Array) => {
  for (let i = 0; i < a.length; i++) a[i] = Math.fround(a[i]);
};

/** The rule and its reverse step with every state, read-out and gradient rounded to float32 after each token. */
function float32Rule(rule: Rule): { rule: Rule; back: RuleBackward } {
  const back = backwardOf(rule);
  return {
    rule: Object.assign(Object.create(rule) as Rule, {
      step: (S: Float64Array, x: TokenInputs, d: Dims) => (rule.step(S, x, d), round32(S)),
      read: (S: Float64Array, q: Float64Array, d: Dims, o: Float64Array) => (rule.read(S, q, d, o), round32(o)),
    }),
    back: {
      name: back.name,
      stepBack: (S: Float64Array, x: TokenInputs, dS: Float64Array, dx: Record<string, Float64Array>, d: Dims) => {
        back.stepBack(S, x, dS, dx, d);
        round32(dS);
        for (const a of Object.values(dx)) round32(a);
      },
    },
  };
}

describe('momlab vectors --grad', () => {
  it("writes the upstream gradients as inputs and the reference backward's gradients as expected, in fla's names", async () => {
    const { v, args } = await gradVectors('names');
    const rule = getRule(v.manifest.core.rule);
    const { B, T, H, E, dk, dv } = v.cfg;
    expect(v.inputs.get('core.do')!.shape, args).toEqual([B, T, H, dv]);
    expect(v.inputs.get('core.dht.0')!.shape).toEqual([B, H, dk, dv]);
    const names = ['core.dq', 'core.drouter_logits', ...v.slots.flatMap((e) => [...rule.inputs.map((d) => `core.d${d.name}.${e}`), `core.dh0.${e}`])];
    expect([...v.expected.keys()].filter((n) => n.startsWith('core.d')).sort()).toEqual(names.sort());
    expect(v.expected.get('core.drouter_logits')!.shape).toEqual([B, T, E]);
    // the values: momBackward on exactly the stored float32 inputs, rounded to float32
    const g = gradTensors(v, rule, recompute(v, rule));
    for (const [n, a] of Object.entries(g)) expect(Array.from(v.expected.get(n)!.data), `${n} (${args})`).toEqual(Array.from(a, Math.fround));
    // with k = 1 the single weight is always 1: the logits get no gradient
    for (const n of names.filter((n) => v.cfg.topk > 1 || n !== 'core.drouter_logits')) expect(v.expected.get(n)!.data.some((x) => x !== 0), `${n} is not all zero (${args})`).toBe(true);
  });

  it('variable-length --grad: each sequence the backward of its own run, dh0 per sequence', async () => {
    const { v, args } = await gradVectors('varlen', ['--lengths', `${int(1, 9)},${int(1, 9)},${int(1, 9)}`]);
    const rule = getRule(v.manifest.core.rule);
    const cu = v.manifest.core.cu_seqlens!;
    const { H, E, dk, dv } = v.cfg;
    const per = H * dk * dv;
    const n = 1; // the middle sequence
    const [from, to] = [cu[n], cu[n + 1]];
    const rows = (a: Float64Array, w: number) => a.slice(from * w, to * w);
    const mem = (m: Record<string, Float64Array>) => Object.fromEntries(rule.inputs.map((d) => [d.name, rows(m[d.name], H * (d.width === 'dk' ? dk : d.width === 'dv' ? dv : 1))]));
    const x: CoreInputs = { q: rows(v.x.q, H * dk), logits: rows(v.x.logits, E), memories: v.x.memories.map(mem), shared: v.x.shared ? mem(v.x.shared) : null };
    const seq = (s: CoreState | undefined): CoreState | undefined =>
      s && { routed: Float64Array.from({ length: E * per }, (_, i) => s.routed[(Math.floor(i / per) * 3 + n) * per + (i % per)]), shared: s.shared ? s.shared.slice(n * per, (n + 1) * per) : null };
    const g = momBackward(rule, { ...v.cfg, B: 1, T: to - from }, x, { mix: v.manifest.core.mix, initial: seq(v.state('h0')) }, { do: rows(v.inputs.get('core.do')!.data, H * dv), dfinal: seq(v.state('dht'))! });
    expect(Array.from(v.expected.get('core.dq')!.data.slice(from * H * dk, to * H * dk)), args).toEqual(Array.from(g.dq, Math.fround));
    expect(Array.from(v.expected.get('core.dh0.0')!.data.slice(n * per, (n + 1) * per))).toEqual(Array.from(g.dinitial.routed.subarray(0, per), Math.fround));
    expect(v.expected.get('core.dh0.0')!.shape).toEqual([3, H, dk, dv]);
  });

  it('the vectors verify against themselves; a perturbed dq fails with where it goes wrong', async () => {
    const { out, v, args } = await gradVectors('self');
    const ok = await momlab('verify', '--vectors', out, '--outputs', join(out, 'expected.safetensors'));
    expect(ok.code, `${args}\n${ok.out}`).toBe(0);
    const t: Record<string, { shape: number[]; data: Float64Array }> = {};
    for (const [n, x] of v.expected) t[n] = { shape: x.shape, data: x.data.slice() };
    const dq = t['core.dq'];
    const at = int(0, dq.data.length - 1);
    dq.data[at] += 10 * (1 + Math.abs(dq.data[at]));
    const p = join(dir, 'bad-dq.safetensors');
    writeFileSync(p, serializeSafetensors(t));
    const bad = await momlab('verify', '--vectors', out, '--outputs', p);
    expect(bad.code, bad.out).toBe(1);
    const { T, H, dk } = v.cfg;
    const idx = [Math.floor(at / (T * H * dk)), Math.floor(at / (H * dk)) % T, Math.floor(at / dk) % H, at % dk];
    expect(bad.out).toMatch(/^core\.dq\s+\S+\s+\S+\s+1\.00e-4\s+FAIL/m);
    expect(bad.out).toContain(`core.dq: worst |err|`);
    expect(bad.out).toContain(`at (b ${idx[0]}, t ${idx[1]}, h ${idx[2]}, i ${idx[3]})`);
    expect(bad.out).toMatch(/1 of \d+ tensors FAIL/);
  });

  it("a float32-rounded evaluation of the forward+backward passes verify's gradient tolerance, with a margin of 10", async () => {
    // the measurement behind TOLERANCE's gradient rows (src/cli/verify.ts)
    const { out, v, args } = await gradVectors('fp32');
    const rule = getRule(v.manifest.core.rule);
    const r32 = float32Rule(rule);
    const g = gradTensors(v, rule, recompute(v, r32.rule, r32.back));
    const t: Record<string, TensorIn> = {};
    for (const [n, x] of v.expected) t[n] = { shape: x.shape, data: g[n] ?? x.data };
    for (const [n, a] of Object.entries(g)) {
      const cmp = compareArrays(v.expected.get(n)!.data, Float64Array.from(a, Math.fround));
      expect(cmp.pass(TOLERANCE.fp32[groupOf(n)] / 10, SPEC_ATOL), `${n}: err ratio ${cmp.errRatio} (${args})`).toBe(true);
    }
    const p = join(dir, 'fp32.safetensors');
    writeFileSync(p, serializeSafetensors(t));
    const r = await momlab('verify', '--vectors', out, '--outputs', p, '--only', 'core.d');
    expect(r.code, `${args}\n${r.out}`).toBe(0);
    expect(groupOf('core.dbeta.shared')).toBe('grad-gate');
    expect(groupOf('core.dk.0')).toBe('grad');
  });

  it('the edge suite and the --config vectors take --grad too', async () => {
    const cfg = join(dir, 'cfg.json');
    writeFileSync(cfg, JSON.stringify({ hidden_size: 6, num_heads: 1, head_dim: 3, expand_v: 1, num_memories: 2, topk: 1, shared_mem: false, conv_size: 2 }));
    const out = join(dir, 'cfg-vec');
    const r = await momlab('vectors', '--config', cfg, '--tokens', '5', '--grad', '--seed', '4', '--out', out);
    expect(r.code, r.out).toBe(0);
    const v = readCoreFolder(out);
    expect([...v.expected.keys()].filter((n) => n.startsWith('core.d')).sort()).toEqual(['core.dbeta.0', 'core.dbeta.1', 'core.dg.0', 'core.dg.1', 'core.dh0.0', 'core.dh0.1', 'core.dk.0', 'core.dk.1', 'core.dq', 'core.drouter_logits', 'core.dv.0', 'core.dv.1']);
    expect(v.expected.has('layer.y')).toBe(true);
    // a left-padded layer batch with a varlen core, gradients included
    const varlen = join(dir, 'cfg-varlen');
    const lengths = await momlab('vectors', '--config', cfg, '--lengths', '2,3', '--grad', '--seed', '4', '--out', varlen);
    expect(lengths.code, lengths.out).toBe(0);
    const vl = readCoreFolder(varlen);
    expect(vl.inputs.get('layer.attention_mask')!.shape).toEqual([2, 3]);
    expect(vl.expected.get('core.dh0.0')!.shape[0]).toBe(2);
  });

  it('refuses bad core options with one line and exit 2, and a request over the memory budget before allocating', async () => {
    const out = join(dir, 'refused');
    const cases: [string[], RegExp][] = [
      [['--rule', 'gated-delta', '--mix', 'sideways'], /--mix must be one of after, before, got 'sideways'/],
      [['--rule', 'gated-delta', '--initial-state', 'ones'], /--initial-state must be one of zero, random/],
      [['--rule', 'gated-delta', '--lengths', '3,0,2'], /--lengths needs 1 to 64 comma-separated token counts/],
      [['--rule', 'gated-delta', '--lengths', '3,2', '--tokens', '5'], /--lengths sets the batch/],
      [['--rule', 'gated-delta', '--topk', '5', '--memories', '4'], /--topk must be an integer in 1\.\.4, got 5/],
      [['--rule', 'no-such-rule'], /unknown rule 'no-such-rule'/],
      [['--suite', 'hard'], /--suite must be 'edge'/],
      [['--rule', 'gla', '--weights', 'w.safetensors'], /--weights is for --config/],
      [['--suite', 'edge', '--grad', '--max-memory', '1MiB'], /the edge suite needs about .* over the memory budget of 1\.0 MiB/],
      [['--rule', 'delta', '--grad', '--tokens', '4096', '--batch', '64', '--max-memory', '64MiB'], /core vectors for B = 64, T = 4096 needs about .* over the memory budget/],
    ];
    for (const [args, re] of cases) {
      const r = await momlab('vectors', ...args, '--seed', '1', '--out', out);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.out.trim().split('\n'), r.out).toHaveLength(1);
      expect(r.out, args.join(' ')).toMatch(re);
    }
  });
});
