import { beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { momForward } from '../reference/mom.js';
import { route } from '../reference/router.js';
import { getRule } from '../reference/rules/index.js';
import { parseSafetensors, serializeSafetensors, type TensorIn } from '../src/io/safetensors.js';
import { getGpu } from '../gpu/device.js';
import { gpuMomForward } from '../gpu/mom.js';
import { getGpuRule } from '../gpu/kernels/index.js';
import { momlab, readCoreFolder } from './vectors-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'momlab-suite-'));
const suite = join(dir, 'suite');
const seed = Math.floor(Math.random() * 2 ** 32);
const mix = Math.random() < 0.5 ? 'after' : 'before';
const initial = Math.random() < 0.5 ? 'zero' : 'random';
const CASES = ['tied-logits', 'idle-memory', 'busy-memory', 't1', 't63', 't64', 't65', 't127', 't129', 'topk-all', 'no-shared', 'long-t4096', 'varlen', 'g-near-lo', 'g-near-hi', 'beta-near-lo', 'beta-near-hi'];

/** Every case's expected.safetensors copied to OUT/<case>.safetensors, the named case's tensor edited. */
function outputs(name: string, edit?: { case: string; tensor: string; f: (t: { shape: number[]; data: Float64Array }) => void }): string {
  const out = join(dir, name);
  mkdirSync(out, { recursive: true });
  for (const c of CASES) {
    const src = join(suite, c, 'expected.safetensors');
    if (edit?.case !== c) {
      copyFileSync(src, join(out, `${c}.safetensors`));
      continue;
    }
    const t: Record<string, { shape: number[]; data: Float64Array }> = {};
    for (const [n, x] of parseSafetensors(readFileSync(src)).tensors) t[n] = { shape: x.shape, data: x.data.slice() };
    edit.f(t[edit.tensor]);
    writeFileSync(join(out, `${c}.safetensors`), serializeSafetensors(t));
  }
  return out;
}

beforeAll(async () => {
  // small sizes keep the reference cheap; --grad so that the gradients go through every case too
  const r = await momlab('vectors', '--suite', 'edge', '--heads', '2', '--memories', '3', '--topk', '2', '--dk', '5', '--dv', '3', '--mix', mix, '--initial-state', initial, '--grad', '--seed', String(seed), '--out', suite);
  if (r.code !== 0) throw new Error(r.out);
});

describe(`momlab vectors --suite edge (seed ${seed}, mix ${mix}, initial ${initial})`, () => {
  it('writes one folder per case, and index.json lists every one of them', () => {
    const index = JSON.parse(readFileSync(join(suite, 'index.json'), 'utf8'));
    expect(index.format).toBe('momlab-vectors-suite/1');
    expect(index.cases.map((c: { name: string }) => c.name)).toEqual(CASES);
    expect(readdirSync(suite).sort()).toEqual([...CASES, 'index.json'].sort());
    for (const c of index.cases) expect(readdirSync(join(suite, c.dir)).sort()).toEqual(['expected.safetensors', 'inputs.safetensors', 'manifest.json']);
    expect(index.skipped).toEqual([]);
  });

  it('never replaces a suite without --force', async () => {
    const again = await momlab('vectors', '--suite', 'edge', '--seed', '1', '--out', suite);
    expect(again.code).toBe(2);
    expect(again.out).toMatch(/the output '.*index\.json' exists \(pass --force to replace it\)/);
  });

  it('the cases hold what their names say', () => {
    const tied = readCoreFolder(join(suite, 'tied-logits'));
    const z = tied.x.logits;
    expect(Array.from(z.subarray(0, 3))).toEqual([0.5, 0.5, 0.5]); // token 0: all E tied, ties go to the lower index
    const first = route(z, tied.cfg.B, tied.cfg.T, tied.cfg.E, tied.cfg.topk);
    expect(Array.from(first.indices.subarray(0, 2))).toEqual([0, 1]);

    const idle = readCoreFolder(join(suite, 'idle-memory'));
    const r = route(idle.x.logits, 2, idle.cfg.T, 3, 2);
    const picked = (b: number) => new Set(r.indices.subarray(b * idle.cfg.T * 2, (b + 1) * idle.cfg.T * 2));
    expect(picked(0).has(2)).toBe(false);
    expect(picked(1).has(2)).toBe(true);
    // memory 2 of sequence 0 ends where it started
    const per = idle.cfg.H * idle.cfg.dk * idle.cfg.dv;
    const h0 = idle.state('h0')?.routed.subarray(2 * 2 * per, 2 * 2 * per + per) ?? new Float64Array(per);
    expect(Array.from(idle.expected.get('core.final_state.2')!.data.subarray(0, per))).toEqual(Array.from(h0));

    const busy = readCoreFolder(join(suite, 'busy-memory'));
    const rb = route(busy.x.logits, busy.cfg.B, busy.cfg.T, 3, 2);
    for (let i = 0; i < busy.cfg.B * busy.cfg.T; i++) expect([rb.indices[2 * i], rb.indices[2 * i + 1]]).toContain(0);

    expect(readCoreFolder(join(suite, 'topk-all')).cfg.topk).toBe(3);
    expect(readCoreFolder(join(suite, 'no-shared')).inputs.has('core.k.shared')).toBe(false);
    for (const T of [1, 63, 64, 65, 127, 129]) expect(readCoreFolder(join(suite, `t${T}`)).inputs.get('core.q')!.shape).toEqual([2, T, 2, 5]);
    expect(readCoreFolder(join(suite, 'long-t4096')).inputs.get('core.q')!.shape).toEqual([1, 4096, 1, 16]);

    const beta = (c: string) => readCoreFolder(join(suite, c)).x.memories[1].beta;
    expect(Math.max(...beta('beta-near-lo'))).toBeLessThan(1e-4);
    expect(Math.min(...beta('beta-near-lo'))).toBeGreaterThan(0);
    expect(Math.min(...beta('beta-near-hi'))).toBeGreaterThan(1 - 1e-4);
    expect(Math.max(...beta('beta-near-hi'))).toBeLessThan(1);
    const g = (c: string) => readCoreFolder(join(suite, c)).x.memories[0].g;
    expect(Math.max(...g('g-near-lo'))).toBeLessThanOrEqual(-20);
    expect(g('g-near-hi').includes(0)).toBe(true);
    expect(Math.min(...g('g-near-hi'))).toBeGreaterThan(-1e-5);
  });

  it('varlen: B = 1 with cu_seqlens, each sequence the reference run on its own from its own initial state', () => {
    const v = readCoreFolder(join(suite, 'varlen'));
    expect(Array.from(v.inputs.get('core.cu_seqlens')!.data)).toEqual([0, 5, 69, 70, 107]);
    expect(v.manifest.core.cu_seqlens).toEqual([0, 5, 69, 70, 107]);
    expect(v.expected.get('core.final_state.0')!.shape).toEqual([4, 2, 5, 3]);
    const rule = getRule('gated-delta');
    const { H, dk, dv, E } = v.cfg;
    const per = H * dk * dv;
    const n = 1; // the 64-token sequence, tokens 5..69
    const rows = (a: Float64Array, w: number) => a.subarray(5 * w, 69 * w);
    const mem = (m: Record<string, Float64Array>) => ({ k: rows(m.k, H * dk), v: rows(m.v, H * dv), g: rows(m.g, H), beta: rows(m.beta, H) });
    const h0 = v.state('h0');
    const initial = h0 && { routed: Float64Array.from({ length: E * per }, (_, i) => h0.routed[(Math.floor(i / per) * 4 + n) * per + (i % per)]), shared: h0.shared!.slice(n * per, (n + 1) * per) };
    const r = momForward(rule, { ...v.cfg, B: 1, T: 64 }, { q: rows(v.x.q, H * dk), logits: rows(v.x.logits, E), memories: v.x.memories.map(mem), shared: mem(v.x.shared!) }, { mix, initial });
    expect(Array.from(v.expected.get('core.o')!.data.subarray(5 * H * dv, 69 * H * dv))).toEqual(Array.from(r.o, Math.fround));
    expect(Array.from(v.expected.get('core.final_state.shared')!.data.subarray(n * per, (n + 1) * per))).toEqual(Array.from(r.final.shared!, Math.fround));
  });

  it("every case verifies against momlab's own expected values; a perturbed tensor fails, named with its case", async () => {
    const ok = await momlab('verify', '--vectors', suite, '--outputs', outputs('self'));
    expect(ok.code, ok.out).toBe(0);
    for (const c of CASES) expect(ok.out).toMatch(new RegExp(`^${c} `, 'm'));
    expect(ok.out).toMatch(new RegExp(`all ${CASES.length} cases pass`));
    expect(ok.out.split('\n')[0]).toMatch(/^case\s+o\s+final_state\.\*\s+dq\s+drouter_logits\s+dk\.\*/);
    const json = JSON.parse((await momlab('verify', '--vectors', suite, '--outputs', outputs('self'), '--json')).out);
    expect(json.passed).toBe(true);
    expect(json.cases.map((c: { case: string }) => c.case)).toEqual(CASES);

    const c = CASES[Math.floor(Math.random() * (CASES.length - 1))]; // not the long case: keep it cheap
    const tensor = ['core.o', 'core.final_state.1', 'core.dq', 'core.dbeta.0', 'core.dh0.shared'][Math.floor(Math.random() * 5)];
    const bad = await momlab('verify', '--vectors', suite, '--outputs', outputs('bad', { case: c, tensor, f: (t) => t.data.forEach((x, i) => (t.data[i] = x * (1 + 1e-2 * (1 + Math.random())) + 1e-3)) }));
    expect(bad.code, bad.out).toBe(1);
    expect(bad.out).toMatch(new RegExp(`^${c} ${tensor.replace(/\./g, '\\.')}: FAIL`, 'm'));
    expect(bad.out).toMatch(new RegExp(`1 of ${CASES.length} cases FAIL \\(${c}\\)`));
    expect(bad.out).toMatch(/worst \|err\|/);
  });

  it('a case without its outputs file fails, naming it; a suite needs an outputs directory', async () => {
    const out = outputs('partial');
    const { rmSync } = await import('node:fs');
    rmSync(join(out, 't65.safetensors'));
    const r = await momlab('verify', '--vectors', suite, '--outputs', out);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^t65\s+FAIL \(no outputs file .*t65\.safetensors\)/m);
    const notDir = await momlab('verify', '--vectors', suite, '--outputs', join(out, 't1.safetensors'));
    expect(notDir.code).toBe(2);
    expect(notDir.out).toMatch(/suite.*--outputs must be a directory/);
  });

  it('an index naming a case outside the suite folder is refused', async () => {
    const fake = join(dir, 'fake');
    mkdirSync(fake);
    writeFileSync(join(fake, 'index.json'), JSON.stringify({ format: 'momlab-vectors-suite/1', cases: [{ name: '../suite/t1' }] }));
    const r = await momlab('verify', '--vectors', fake, '--outputs', outputs('self'));
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/not a plain folder name/);
  });

  it("momlab's own float32 GPU forward passes verify's fp32 tolerance on every edge case", async () => {
    const ctx = await getGpu();
    const index = JSON.parse(readFileSync(join(suite, 'index.json'), 'utf8')) as { cases: { name: string }[] };
    expect(index.cases.map((c) => c.name).sort()).toEqual([...CASES].sort());
    for (const { name: c } of index.cases) {
      const v = readCoreFolder(join(suite, c));
      const { H, dk, dv, E } = v.cfg;
      const per = H * dk * dv;
      // A variable-length batch is B = 1 with the sequences end to end (cu_seqlens): each runs alone.
      const cu = v.manifest.core.cu_seqlens ?? [0, v.cfg.T];
      const seqs = cu.length - 1;
      const B = v.manifest.core.cu_seqlens ? 1 : v.cfg.B;
      const o = new Float32Array(v.expected.get('core.o')!.data.length);
      const finals = v.slots.map(() => new Float32Array(seqs * B * per));
      const h0 = v.state('h0');
      for (let n = 0; n < seqs; n++) {
        const [t0, t1] = [cu[n], cu[n + 1]];
        const cfg = v.manifest.core.cu_seqlens ? { ...v.cfg, B: 1, T: t1 - t0 } : v.cfg;
        const cut = (a: Float64Array, w: number) => (v.manifest.core.cu_seqlens ? a.subarray(t0 * w, t1 * w) : a);
        const mem = (m: Record<string, Float64Array>) => Object.fromEntries(Object.entries(m).map(([k, a]) => [k, cut(a, (a.length / v.cfg.T) | 0)]));
        const x = { q: cut(v.x.q, H * dk), logits: cut(v.x.logits, E), memories: v.x.memories.map(mem), shared: v.x.shared ? mem(v.x.shared) : null };
        const pick = (a: Float64Array) => (v.manifest.core.cu_seqlens ? a.subarray(n * per, (n + 1) * per) : a);
        const initial = h0 && {
          routed: Float64Array.from({ length: E * cfg.B * per }, (_, i) => pick(h0.routed.subarray(Math.floor(i / (cfg.B * per)) * seqs * B * per, (Math.floor(i / (cfg.B * per)) + 1) * seqs * B * per))[i % (cfg.B * per)]),
          shared: h0.shared ? pick(h0.shared).slice() : null,
        };
        const r = await gpuMomForward(ctx, getGpuRule('gated-delta'), cfg, x, { mode: mix === 'after' ? 'chunk' : 'recurrent', chunk: 16, mix, initial });
        o.set(r.o, t0 * H * dv * (v.manifest.core.cu_seqlens ? 1 : 0));
        v.slots.forEach((_, i) => finals[i].set(i < E ? r.final.routed.subarray(i * cfg.B * per, (i + 1) * cfg.B * per) : r.final.shared!, n * cfg.B * per));
      }
      const out: Record<string, TensorIn> = { 'core.o': { shape: v.expected.get('core.o')!.shape, data: o } };
      v.slots.forEach((e, i) => (out[`core.final_state.${e}`] = { shape: v.expected.get(`core.final_state.${e}`)!.shape, data: finals[i] }));
      const p = join(dir, `gpu-${c}.safetensors`);
      writeFileSync(p, serializeSafetensors(out));
      const res = await momlab('verify', '--vectors', join(suite, c), '--outputs', p, '--only', 'core.o,core.final_state.');
      expect(res.code, `${c}\n${res.out}`).toBe(0);
    }
  });
});

describe('momlab vectors --rule FILE (a rule written here, not shipped)', () => {
  const ruleFile = join(dir, 'leaky.rule');
  writeFileSync(ruleFile, ['# a leaky delta rule with a closed-range gate', 'state S[dk, dv]', 'inputs k[dk], v[dv], a', 'range k normalized', 'range a in [0, 1]', 'update S = (1 - a) * S + a * k * (v\' - k\' * S)', 'output o = S\' * q', ''].join('\n'));

  it('writes its own inputs, verifies against itself, fails perturbed; --grad uses the backward derived from its text', async () => {
    const out = join(dir, 'leaky');
    const s = 1 + Math.floor(Math.random() * 1e6);
    const r = await momlab('vectors', '--rule', ruleFile, '--lengths', '3,17,9', '--memories', '3', '--dk', '6', '--dv', '5', '--initial-state', 'random', '--seed', String(s), '--out', out);
    expect(r.code, r.out).toBe(0);
    const v = readCoreFolder(out);
    expect([...v.inputs.keys()].filter((n) => n.endsWith('.0')).sort()).toEqual(['core.a.0', 'core.h0.0', 'core.k.0', 'core.v.0']);
    expect(v.inputs.get('core.a.shared')!.shape).toEqual([1, 29, 2]);
    expect(v.expected.get('core.final_state.2')!.shape).toEqual([3, 2, 6, 5]);
    const ok = await momlab('verify', '--vectors', out, '--outputs', join(out, 'expected.safetensors'));
    expect(ok.code, ok.out).toBe(0);
    const t: Record<string, TensorIn> = {};
    for (const [n, x] of v.expected) t[n] = { shape: x.shape, data: n === 'core.o' ? x.data.map((y, i) => (i === 7 ? y + 0.5 : y)) : x.data };
    const p = join(dir, 'leaky-bad.safetensors');
    writeFileSync(p, serializeSafetensors(t));
    const bad = await momlab('verify', '--vectors', out, '--outputs', p);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/core\.o: worst \|err\| 5\.00e-1 at \(b 0, t 0, h 1, i 2\)/);
    const gradOut = join(dir, 'leaky-grad');
    const grad = await momlab('vectors', '--rule', ruleFile, '--grad', '--seed', '1', '--out', gradOut);
    expect(grad.code, grad.out).toBe(0);
    const g = readCoreFolder(gradOut);
    for (const n of ['core.dq', 'core.drouter_logits', 'core.da.0', 'core.dk.0', 'core.dv.0', 'core.dh0.0', 'core.da.shared']) expect(g.expected.has(n), n).toBe(true);
    const gradOk = await momlab('verify', '--vectors', gradOut, '--outputs', join(gradOut, 'expected.safetensors'));
    expect(gradOk.code, gradOk.out).toBe(0);
  });

  it('a rule input named like a state tensor (h0) is refused, naming it', async () => {
    const file = join(dir, 'h0.rule');
    writeFileSync(file, ['state S[dk, dv]', 'inputs k[dk], v[dv], h0', 'range k normalized', 'range h0 in (0, 1)', "update S = h0 * S + k * v'", "output o = S' * q", ''].join('\n'));
    const r = await momlab('vectors', '--rule', file, '--seed', '1', '--out', join(dir, 'h0'));
    expect(r.code).toBe(2);
    expect(r.out.trim()).toMatch(/^momlab vectors: rule '\S+' has an input named 'h0', which the vectors use for a state \(core\.h0\.\{e\}\); rename the input$/);
  });

  it('its edge suite puts the closed-range input at both bounds exactly', async () => {
    const out = join(dir, 'leaky-suite');
    const r = await momlab('vectors', '--suite', 'edge', '--rule', ruleFile, '--dk', '4', '--dv', '4', '--seed', String(Math.floor(Math.random() * 1e6)), '--out', out);
    expect(r.code, r.out).toBe(0);
    const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8'));
    expect(index.cases.map((c: { name: string }) => c.name)).toEqual(expect.arrayContaining(['a-near-lo', 'a-near-hi']));
    expect(index.cases.map((c: { name: string }) => c.name)).not.toContain('beta-near-lo');
    const lo = readCoreFolder(join(out, 'a-near-lo')).x.memories[0].a;
    const hi = readCoreFolder(join(out, 'a-near-hi')).x.memories[0].a;
    expect(lo.includes(0) && Math.max(...lo) < 1e-4).toBe(true);
    expect(hi.includes(1) && Math.min(...hi) > 1 - 1e-4).toBe(true);
    const selfOut = join(dir, 'leaky-self');
    mkdirSync(selfOut);
    for (const c of index.cases) copyFileSync(join(out, c.name, 'expected.safetensors'), join(selfOut, `${c.name}.safetensors`));
    const v = await momlab('verify', '--vectors', out, '--outputs', selfOut);
    expect(v.code, v.out).toBe(0);
  });
});
