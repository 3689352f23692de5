import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSafetensors, serializeSafetensors, type TensorIn } from '../src/io/safetensors.js';
import { parseLayerConfig } from '../reference/layer-config.js';
import { layerWeightsFrom } from '../src/io/layer-files.js';
import { layerForward } from '../reference/layer.js';
import { runCli } from '../src/cli/main.js';
import { where } from '../src/cli/where.js';
import { getGpu } from '../gpu/device.js';
import { gpuLayerForward } from '../gpu/layer.js';
import { gpuMomForward } from '../gpu/mom.js';
import { getGpuRule } from '../gpu/kernels/index.js';
import type { CoreConfig } from '../reference/types.js';

const dir = mkdtempSync(join(tmpdir(), 'momlab-vectors-'));
const vec = join(dir, 'vec');

function momlab(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/momlab.js', ...args], { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' } });
  return { code: r.status, out: r.stdout + r.stderr };
}

/** `momlab verify` in-process (spawning costs seconds on the shared CI machine): exit code and output. */
async function verify(...args: string[]) {
  let out = '';
  const code = await runCli(['verify', ...args], { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (out += s) } });
  return { code, out };
}

/** expected.safetensors with `edit` applied to its tensors, written to `name`. */
function variant(name: string, edit: (t: Record<string, TensorIn>) => void): string {
  const f = parseSafetensors(readFileSync(join(vec, 'expected.safetensors')));
  const t: Record<string, TensorIn> = {};
  for (const [n, x] of f.tensors) t[n] = { shape: x.shape, data: x.data.slice() };
  edit(t);
  const p = join(dir, name);
  writeFileSync(p, serializeSafetensors(t));
  return p;
}

const config = { hidden_size: 6, num_heads: 2, head_dim: 4, expand_v: 1, num_memories: 3, topk: 2, shared_mem: true, conv_size: 3, norm_eps: 1e-6 };

beforeAll(() => {
  writeFileSync(join(dir, 'cfg.json'), JSON.stringify(config));
  const r = momlab('vectors', '--config', join(dir, 'cfg.json'), '--batch', '2', '--tokens', '9', '--seed', '11', '--out', vec);
  if (r.code !== 0) throw new Error(r.out);
});

describe('momlab vectors / verify', () => {
  it('writes inputs, weights, expected and a manifest in fla layout', () => {
    const m = JSON.parse(readFileSync(join(vec, 'manifest.json'), 'utf8'));
    expect(m.config).toEqual({ ...config, single_kv_proj: false });
    expect(m.seed).toBe(11);
    const inputs = parseSafetensors(readFileSync(join(vec, 'inputs.safetensors')));
    const expected = parseSafetensors(readFileSync(join(vec, 'expected.safetensors')));
    expect(inputs.tensors.get('core.q')!.shape).toEqual([2, 9, 2, 4]);
    expect(inputs.tensors.get('core.beta.shared')!.shape).toEqual([2, 9, 2]);
    expect(inputs.tensors.get('layer.hidden_states')!.shape).toEqual([2, 9, 6]);
    expect(expected.tensors.get('core.o')!.shape).toEqual([2, 9, 2, 4]);
    expect(expected.tensors.get('core.final_state.2')!.shape).toEqual([2, 2, 4, 4]);
    expect(expected.tensors.get('layer.y')!.shape).toEqual([2, 9, 6]);
    expect(m.expected.map((t: { name: string }) => t.name).sort()).toEqual([...expected.tensors.keys()].sort());
    // the files are pinned by their SHA-256; the tolerance is verify's own, not the manifest's
    expect(m.sha256['inputs.safetensors']).toBe(createHash('sha256').update(readFileSync(join(vec, 'inputs.safetensors'))).digest('hex'));
    expect(m.sha256['expected.safetensors']).toBe(createHash('sha256').update(readFileSync(join(vec, 'expected.safetensors'))).digest('hex'));
    for (const t of m.expected) expect(t.tolerance).toBeUndefined();
    // The expected layer output is the reference on exactly the stored (float32) inputs and weights.
    const w = layerWeightsFrom(parseSafetensors(readFileSync(join(vec, 'weights.safetensors'))), parseLayerConfig(config));
    const y = layerForward(parseLayerConfig(config), w, inputs.tensors.get('layer.hidden_states')!.data, 2, 9).y;
    expect(Array.from(expected.tensors.get('layer.y')!.data)).toEqual(Array.from(y, Math.fround));
  });

  it('the expected file verifies against itself (exit 0)', () => {
    const r = momlab('verify', '--vectors', vec, '--outputs', join(vec, 'expected.safetensors'));
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/layer\.y\s+0\.00e\+0\s+0\.00e\+0/);
    expect(r.out).toMatch(/all 23 tensors pass/);
  });

  it('writes the conv caches: per projection and memory, [B, C, W-1], equal to the reference state', () => {
    const inputs = parseSafetensors(readFileSync(join(vec, 'inputs.safetensors'))).tensors;
    const expected = parseSafetensors(readFileSync(join(vec, 'expected.safetensors'))).tensors;
    const cfg = parseLayerConfig(config);
    const w = layerWeightsFrom(parseSafetensors(readFileSync(join(vec, 'weights.safetensors'))), cfg);
    const fin = layerForward(cfg, w, inputs.get('layer.hidden_states')!.data, 2, 9).final;
    // 3 memories + shared = 4 slots; C = H*dk = H*dv = 8; W - 1 = 2; slot-major as in the state
    const slots = ['0', '1', '2', 'shared'];
    for (const which of ['q', 'k', 'v'] as const) {
      slots.forEach((slot, i) => {
        const t = expected.get(`layer.conv_cache.${which}.${slot}`)!;
        expect(t.shape).toEqual([2, 8, 2]);
        expect(Array.from(t.data)).toEqual(Array.from(fin.conv[which].subarray(i * 32, (i + 1) * 32), Math.fround));
      });
    }
    // the caches are not all zero (each memory got a token in 2 x 9 tokens with top-2 of 3)
    expect(expected.get('layer.conv_cache.k.shared')!.data.some((x) => x !== 0)).toBe(true);
    const m = JSON.parse(readFileSync(join(vec, 'manifest.json'), 'utf8'));
    expect(m.computed).toMatch(/conv_cache.*oldest first/);
  });

  it("a conv cache in fla's [B, C, W] layout is compared on its last W-1 columns; a wrong one fails", async () => {
    // fla keeps one more (the oldest) input: prepend an arbitrary column, it must be ignored
    const widen = (t: TensorIn, bump = 0): TensorIn => {
      const [B, C, w] = t.shape;
      const data = new Float64Array(B * C * (w + 1));
      for (let r = 0; r < B * C; r++) {
        data[r * (w + 1)] = 1000 + r;
        for (let j = 0; j < w; j++) data[r * (w + 1) + 1 + j] = t.data[r * w + j] * (1 + bump);
      }
      return { shape: [B, C, w + 1], data };
    };
    const ok = variant('fla-conv.safetensors', (t) => {
      for (const n of Object.keys(t)) if (n.includes('.conv_cache.')) t[n] = widen(t[n]);
    });
    const r = await verify('--vectors', vec, '--outputs', ok, '--only', 'layer.conv_cache.');
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/layer\.conv_cache\.v\.shared\s+0\.00e\+0 .*pass \(fla layout \[2,8,3\]: its last 2 columns\)/);
    expect(r.out).toMatch(/all 12 tensors pass/);
    // 1% off in the compared columns fails; a width other than W-1 or W is a shape error
    const bad = variant('fla-conv-bad.safetensors', (t) => {
      t['layer.conv_cache.k.1'] = widen(t['layer.conv_cache.k.1'], 0.01);
      t['layer.conv_cache.q.0'] = { shape: [2, 8, 4], data: new Float64Array(64) };
    });
    const b = await verify('--vectors', vec, '--outputs', bad, '--only', 'layer.conv_cache.');
    expect(b.code).toBe(1);
    expect(b.out).toMatch(/layer\.conv_cache\.k\.1 .*FAIL/);
    expect(b.out).toMatch(/layer\.conv_cache\.q\.0 .*FAIL \(shape \[2,8,4\], expected \[2,8,2\]\)/);
    expect(b.out).toMatch(/2 of 12 tensors FAIL/);
  });

  it('conv_size 1 has no history: no conv cache tensors', () => {
    writeFileSync(join(dir, 'cfg1.json'), JSON.stringify({ ...config, conv_size: 1 }));
    const r = momlab('vectors', '--config', join(dir, 'cfg1.json'), '--batch', '1', '--tokens', '3', '--seed', '2', '--out', join(dir, 'vec1'));
    expect(r.code, r.out).toBe(0);
    const names = [...parseSafetensors(readFileSync(join(dir, 'vec1', 'expected.safetensors'))).tensors.keys()];
    expect(names.filter((n) => n.includes('conv_cache'))).toEqual([]);
    expect(names).toContain('layer.final_state.shared');
  });

  it('a perturbed copy fails (exit 1), naming the tensor', async () => {
    // 1% relative noise on core.o: an error ratio near 1e-2, far over the 1e-4 tolerance
    const p = variant('perturbed.safetensors', (t) => {
      t['core.o'].data = Float64Array.from(t['core.o'].data, (v, i) => v * (1 + 0.01 * Math.sin(i + 1)));
    });
    const r = await verify('--vectors', vec, '--outputs', p);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/core\.o .*FAIL/);
    expect(r.out).toMatch(/layer\.y .*pass/);
    // a looser bound, as for TF32 kernels, lets a 1% error through only above 1e-2
    expect((await verify('--vectors', vec, '--outputs', p, '--tolerance', '6e-3')).code).toBe(1);
    expect((await verify('--vectors', vec, '--outputs', p, '--tolerance', '2e-2')).code).toBe(0);
  });

  it('a failure says where: worst element, first token over the tolerance, per head (and --json)', async () => {
    // core.o [B=2, T=9, H=2, dv=4]: batch 1, head 1 off by 0.5 from token 4 on, and by 2 at (1, 6, 1, 2)
    const at = (b: number, t: number, h: number, i: number) => ((b * 9 + t) * 2 + h) * 4 + i;
    const p = variant('where.safetensors', (t) => {
      const o = t['core.o'].data as Float64Array;
      for (let tt = 4; tt < 9; tt++) for (let i = 0; i < 4; i++) o[at(1, tt, 1, i)] += 0.5;
      o[at(1, 6, 1, 2)] += 2;
      // one state element off: its (b, h, i, j)
      (t['layer.final_state.2'].data as Float64Array)[((1 * 2 + 0) * 4 + 3) * 4 + 1] += 1;
    });
    const r = await verify('--vectors', vec, '--outputs', p);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^core\.o: worst \|err\| 2\.50e\+0 at \(b 1, t 6, h 1, i 2\): expected .*; first token over the tolerance: t 4 \(b 1, err ratio .*\); err ratio per head: h0 0\.00e\+0, h1 [\d.]+e-?\+?\d+$/m);
    expect(r.out).toMatch(/^layer\.final_state\.2: worst \|err\| 1\.00e\+0 at \(b 1, h 0, i 3, j 1\)/m);
    const j = await verify('--vectors', vec, '--outputs', p, '--json');
    expect(j.code).toBe(1);
    const rep = JSON.parse(j.out) as { passed: boolean; rows: { name: string; pass: boolean; where?: { worst: { index: Record<string, number> }; firstToken: { b: number; t: number } | null; perHead: number[] | null } }[] };
    expect(rep.passed).toBe(false);
    const o = rep.rows.find((x) => x.name === 'core.o')!;
    expect(o.where!.worst.index).toEqual({ b: 1, t: 6, h: 1, i: 2 });
    expect(o.where!.firstToken).toMatchObject({ b: 1, t: 4 });
    expect(o.where!.perHead![0]).toBe(0);
    expect(o.where!.perHead![1]).toBeGreaterThan(1e-4);
    expect(rep.rows.filter((x) => x.where).map((x) => x.name)).toEqual(['core.o', 'layer.final_state.2']);
    expect(rep.rows.filter((x) => x.pass)).toHaveLength(21);
  });

  it('where() finds one corrupted element of a random [B, T, H, dv] tensor', () => {
    fc.assert(
      fc.property(fc.record({ B: fc.integer({ min: 1, max: 3 }), T: fc.integer({ min: 1, max: 17 }), H: fc.integer({ min: 1, max: 3 }), dv: fc.integer({ min: 1, max: 5 }) }), fc.nat(), fc.double({ min: 0.1, max: 10, noNaN: true }), fc.integer({ min: 1, max: 1000 }), (s, pick, bump, seed) => {
        const n = s.B * s.T * s.H * s.dv;
        const ref = Float64Array.from({ length: n }, (_, i) => Math.sin(seed + i * 1.7));
        const got = ref.slice();
        const k = pick % n;
        got[k] += bump;
        const w = where('core.o', [s.B, s.T, s.H, s.dv], ref, got, 1e-4, 1e-6);
        const idx = w.worst.index;
        expect(((idx.b * s.T + idx.t) * s.H + idx.h) * s.dv + idx.i).toBe(k);
        expect(w.firstToken).toMatchObject({ b: idx.b, t: idx.t });
        w.perHead!.forEach((r, h) => (h === idx.h ? expect(r).toBeGreaterThan(0) : expect(r).toBe(0)));
      }),
      { numRuns: 100 },
    );
  });

  it('a missing tensor fails', async () => {
    const p = variant('missing.safetensors', (t) => delete t['layer.final_state.shared']);
    const r = await verify('--vectors', vec, '--outputs', p);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/layer\.final_state\.shared .*FAIL \(missing from the outputs\)/);
  });

  it('a NaN fails', async () => {
    const p = variant('nan.safetensors', (t) => {
      (t['layer.y'].data as Float64Array)[3] = NaN;
    });
    const r = await verify('--vectors', vec, '--outputs', p);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/layer\.y .*FAIL \(non-finite value at index 3/);
  });

  it('--only checks one group; a wrong shape fails', async () => {
    const p = variant('shape.safetensors', (t) => {
      t['layer.y'] = { shape: [2, 6, 9], data: t['layer.y'].data };
      delete t['core.o'];
    });
    expect((await verify('--vectors', vec, '--outputs', p, '--only', 'core.')).code).toBe(1);
    const r = await verify('--vectors', vec, '--outputs', p, '--only', 'layer.');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/layer\.y .*FAIL \(shape \[2,6,9\], expected \[2,9,6\]\)/);
    // comma-separated prefixes: the untouched tensors pass
    const ok = await verify('--vectors', vec, '--outputs', p, '--only', 'layer.router_logits,layer.final_state,core.final_state');
    expect(ok.code, ok.out).toBe(0);
    expect(ok.out).toMatch(/all 9 tensors pass/);
  });

  it("momlab's own float32 GPU outputs pass verify at momlab's fp32 tolerance", async () => {
    const ctx = await getGpu();
    const m = JSON.parse(readFileSync(join(vec, 'manifest.json'), 'utf8'));
    const inp = parseSafetensors(readFileSync(join(vec, 'inputs.safetensors'))).tensors;
    const get = (n: string) => inp.get(n)!.data;
    const cfg = parseLayerConfig(config);
    const w = layerWeightsFrom(parseSafetensors(readFileSync(join(vec, 'weights.safetensors'))), cfg);
    const layer = await gpuLayerForward(ctx, cfg, w, get('layer.hidden_states'), 2, 9, { chunk: 16 });
    const core: CoreConfig = { B: 2, T: 9, H: 2, E: 3, topk: 2, dk: 4, dv: 4, shared: true };
    const mem = (e: string) => ({ k: get(`core.k.${e}`), v: get(`core.v.${e}`), g: get(`core.g.${e}`), beta: get(`core.beta.${e}`) });
    const c = await gpuMomForward(ctx, getGpuRule('gated-delta'), core, { q: get('core.q'), logits: get('core.router_logits'), memories: ['0', '1', '2'].map(mem), shared: mem('shared') }, { mode: 'chunk', chunk: 16 });
    const per = 2 * 2 * 4 * 4;
    const out: Record<string, TensorIn> = { 'core.o': { shape: [2, 9, 2, 4], data: c.o }, 'layer.y': { shape: [2, 9, 6], data: layer.y }, 'layer.router_logits': { shape: [2, 9, 3], data: layer.logits } };
    for (let e = 0; e < 3; e++) {
      out[`core.final_state.${e}`] = { shape: [2, 2, 4, 4], data: c.final.routed.subarray(e * per, (e + 1) * per) };
      out[`layer.final_state.${e}`] = { shape: [2, 2, 4, 4], data: layer.final.routed.subarray(e * per, (e + 1) * per) };
    }
    out['core.final_state.shared'] = { shape: [2, 2, 4, 4], data: c.final.shared! };
    // conv caches: the GPU state has the reference's layout, slot-major [slot][B, C, W-1]
    ['0', '1', '2', 'shared'].forEach((slot, i) => {
      for (const which of ['q', 'k', 'v'] as const) out[`layer.conv_cache.${which}.${slot}`] = { shape: [2, 8, 2], data: layer.final.conv[which].subarray(i * 32, (i + 1) * 32) };
    });
    out['layer.final_state.shared'] = { shape: [2, 2, 4, 4], data: layer.final.shared! };
    expect(Object.keys(out).sort()).toEqual(m.expected.map((t: { name: string }) => t.name).sort());
    const p = join(dir, 'gpu-outputs.safetensors');
    writeFileSync(p, serializeSafetensors(out));
    const r = await verify('--vectors', vec, '--outputs', p);
    expect(r.code, r.out).toBe(0);
    console.log(r.out); // the measured float32 errors, per tensor
  });

  it('refuses bad flags and a bad weights file with typed errors', () => {
    expect(momlab('vectors', '--config', join(dir, 'cfg.json'), '--seed', '1').out).toMatch(/--out is required/);
    writeFileSync(join(dir, 'trunc.safetensors'), readFileSync(join(vec, 'weights.safetensors')).subarray(0, 100));
    const r = momlab('vectors', '--config', join(dir, 'cfg.json'), '--weights', join(dir, 'trunc.safetensors'), '--seed', '1', '--out', join(dir, 'x'));
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/^momlab vectors: .*trunc\.safetensors: truncated/m);
  });
});

describe('momlab vectors --config --lengths (a left-padded layer batch, attention_mask)', () => {
  it('each row is its sequence alone over its own tokens, y is 0 at padding, and the core is varlen', async () => {
    // random lengths, one of them 1 and one the longest, so padding and a single token both occur
    const lengths = [1, 2 + Math.floor(Math.random() * 9), 2 + Math.floor(Math.random() * 9)];
    const out = join(dir, 'padded');
    const r = momlab('vectors', '--config', join(dir, 'cfg.json'), '--lengths', lengths.join(','), '--seed', '5', '--out', out);
    expect(r.code, r.out).toBe(0);
    const B = lengths.length;
    const T = Math.max(...lengths);
    const D = config.hidden_size;
    const inputs = parseSafetensors(readFileSync(join(out, 'inputs.safetensors'))).tensors;
    const expected = parseSafetensors(readFileSync(join(out, 'expected.safetensors'))).tensors;
    const mask = inputs.get('layer.attention_mask')!;
    expect(mask.shape).toEqual([B, T]);
    const hidden = inputs.get('layer.hidden_states')!.data;
    const y = expected.get('layer.y')!.data;
    const cfg = parseLayerConfig(config);
    const w = layerWeightsFrom(parseSafetensors(readFileSync(join(out, 'weights.safetensors'))), cfg);
    lengths.forEach((L, b) => {
      for (let t = 0; t < T; t++) expect(mask.data[b * T + t]).toBe(t >= T - L ? 1 : 0);
      for (let i = b * T * D; i < (b * T + T - L) * D; i++) expect(y[i]).toBe(0);
      // the row's tokens alone, through the reference layer
      const alone = layerForward(cfg, w, hidden.subarray((b * T + T - L) * D, (b + 1) * T * D), 1, L);
      const got = y.subarray((b * T + T - L) * D, (b + 1) * T * D);
      alone.y.forEach((v, i) => expect(Math.abs(got[i] - Math.fround(v))).toBeLessThanOrEqual(1e-7 * (1 + Math.abs(v))));
      const shared = expected.get('layer.final_state.shared')!;
      const per = shared.data.length / B;
      alone.final.shared!.forEach((v, i) => expect(Math.abs(shared.data[b * per + i] - Math.fround(v))).toBeLessThanOrEqual(1e-7 * (1 + Math.abs(v))));
    });
    expect(inputs.get('core.cu_seqlens')!.data).toEqual(Float64Array.from([0, lengths[0], lengths[0] + lengths[1], lengths[0] + lengths[1] + lengths[2]]));
    const self = await verify('--vectors', out, '--outputs', join(out, 'expected.safetensors'));
    expect(self.code, self.out).toBe(0);
    expect(momlab('vectors', '--config', join(dir, 'cfg.json'), '--lengths', '3,4', '--batch', '2', '--seed', '5', '--out', join(dir, 'p2')).out).toMatch(/--lengths sets the batch .*leave out --batch and --tokens/);
  });
});
