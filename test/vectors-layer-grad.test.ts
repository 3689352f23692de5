import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layerForward } from '../reference/layer.js';
import { layerParamShapes, type LayerConfig, type LayerWeights } from '../reference/layer-config.js';
import { mulberry32 } from '../reference/sample.js';
import { layerWeightsFrom } from '../src/io/layer-files.js';
import { parseSafetensors, serializeSafetensors, type TensorIn } from '../src/io/safetensors.js';
import { jvpEvaluator, layerGradNames, MAX_FD_ERROR, uniformOpen } from '../src/vectors/layer-grad.js';
import { momlab } from './vectors-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'momlab-layer-grad-'));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)];
const int = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

/**
 * A fresh small config with awkward sizes (odd widths, conv 1..4, either projection scheme), but not
 * single_kv_proj with topk = num_memories: identical memories, whose gate gradient is pure cancellation (its own test).
 */
function randomConfig(): LayerConfig {
  const E = int(2, 4);
  const single = pick([true, false]);
  const head_dim = int(2, 5);
  return {
    hidden_size: int(3, 9), num_heads: int(1, 3), head_dim, expand_v: pick(head_dim % 2 ? [1, 2] : [0.5, 1, 2]), num_memories: E, topk: single ? int(1, E - 1) : int(1, E),
    shared_mem: pick([true, false]), single_kv_proj: single, conv_size: int(1, 4), norm_eps: 1e-6,
  };
}

type Tensors = Map<string, { shape: number[]; data: Float64Array }>;

/** `momlab vectors --config --grad` on a fresh config; its files read back. */
async function layerVectors(name: string, c: LayerConfig, extra: string[]) {
  const cfgPath = join(dir, `${name}.json`);
  writeFileSync(cfgPath, JSON.stringify(c));
  const out = join(dir, name);
  const args = ['vectors', '--config', cfgPath, '--grad', ...extra, '--out', out];
  const r = await momlab(...args);
  if (r.code !== 0) throw new Error(`${args.join(' ')} (${JSON.stringify(c)}): ${r.out}`);
  const read = (f: string): Tensors => parseSafetensors(readFileSync(join(out, f))).tensors;
  const w = layerWeightsFrom(parseSafetensors(readFileSync(join(out, 'weights.safetensors'))), c);
  return { out, about: `${args.join(' ')} ${JSON.stringify(c)}`, inputs: read('inputs.safetensors'), expected: read('expected.safetensors'), w, manifest: JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) };
}

/** Σ dy · y where y is the layer with o_proj.weight replaced by `dir`, each row over its own tokens (left padding). */
function linearInOProj(c: LayerConfig, w: LayerWeights, x: Float64Array, dy: Float64Array, dir: Float64Array, B: number, T: number, lengths: number[]): number {
  const D = c.hidden_size;
  let s = 0;
  lengths.forEach((L, b) => {
    const start = b * T + T - L;
    const y = layerForward(c, { ...w, 'o_proj.weight': dir }, x.subarray(start * D, (b + 1) * T * D), 1, L).y;
    for (let i = 0; i < y.length; i++) s += dy[start * D + i] * y[i];
  });
  return s;
}

describe('momlab vectors --config --grad: layer gradients', () => {
  it('writes dy, a direction per tensor and a jvp per tensor, with a manifest listing them, deterministic for a seed', async () => {
    const c = randomConfig();
    const [B, T, seed] = [int(1, 3), int(2, 11), int(0, 2 ** 31)];
    const a = await layerVectors('names-a', c, ['--batch', String(B), '--tokens', String(T), '--seed', String(seed)]);
    const skipped = Object.keys(a.manifest.layer_grad.skipped);
    const names = layerGradNames(c).filter((n) => !skipped.includes(`layer.jvp.${n}`));
    const shapes = { hidden_states: [B, T, c.hidden_size], ...layerParamShapes(c) } as Record<string, number[]>;
    expect(a.inputs.get('layer.dy')!.shape, a.about).toEqual([B, T, c.hidden_size]);
    for (const n of names) {
      expect(a.inputs.get(`layer.dir.${n}`)!.shape, n).toEqual(shapes[n]);
      expect(a.expected.get(`layer.jvp.${n}`)!.shape, n).toEqual([1]);
    }
    expect([...a.expected.keys()].filter((k) => k.startsWith('layer.jvp.')).sort()).toEqual(names.map((n) => `layer.jvp.${n}`).sort());
    expect([...a.inputs.keys()].filter((k) => k.startsWith('layer.dir.')).sort()).toEqual(names.map((n) => `layer.dir.${n}`).sort());
    // every weight of weights.safetensors has its direction, unless y does not depend on it
    expect(Object.keys(layerParamShapes(c)).every((n) => a.inputs.has(`layer.dir.${n}`) || skipped.includes(`layer.jvp.${n}`))).toBe(true);
    for (const [k, t] of a.inputs) if (k === 'layer.dy' || k.startsWith('layer.dir.')) expect(t.data.every((v) => v > -1 && v < 1 && v !== 0), k).toBe(true);
    // layer.dy is its own stream: no other input holds its first two values in a row
    const dy = a.inputs.get('layer.dy')!.data;
    for (const [k, t] of a.inputs) if (k !== 'layer.dy') for (let i = 0; i + 1 < t.data.length; i++) expect(t.data[i] === dy[0] && t.data[i + 1] === dy[1], k).toBe(false);
    const listed = (a.manifest.expected as { name: string }[]).map((t) => t.name);
    expect(names.every((n) => listed.includes(`layer.jvp.${n}`))).toBe(true);
    expect((a.manifest.inputs as { name: string }[]).map((t) => t.name)).toContain('layer.dy');
    expect(a.manifest.layer_grad.worst_fd_error).toBeLessThanOrEqual(MAX_FD_ERROR);
    expect(Object.keys(a.manifest.layer_grad.fd_error).sort()).toEqual(names.map((n) => `layer.jvp.${n}`).sort());
    expect(skipped.every((n) => a.manifest.layer_grad.skipped[n].includes('rounding'))).toBe(true);
    // the same seed writes the same bytes; another seed other directions
    const b = await layerVectors('names-b', c, ['--batch', String(B), '--tokens', String(T), '--seed', String(seed)]);
    for (const f of ['inputs.safetensors', 'expected.safetensors']) expect(readFileSync(join(b.out, f)).equals(readFileSync(join(a.out, f))), f).toBe(true);
    const other = await layerVectors('names-c', c, ['--batch', String(B), '--tokens', String(T), '--seed', String(seed + 1)]);
    expect(other.inputs.get('layer.dir.q_proj.weight')!.data).not.toEqual(a.inputs.get('layer.dir.q_proj.weight')!.data);
  });

  it('jvp along o_proj.weight (y is linear in it) equals Σ dy · y with o_proj.weight replaced by the direction, to 1e-9', async () => {
    for (let run = 0; run < 3; run++) {
      const c = randomConfig();
      const lengths = run === 2 ? Array.from({ length: int(2, 4) }, () => int(1, 9)) : null;
      const [B, T] = lengths ? [lengths.length, Math.max(...lengths)] : [int(1, 3), int(2, 13)];
      const v = await layerVectors(`oproj-${run}`, c, [...(lengths ? ['--lengths', lengths.join(',')] : ['--batch', String(B), '--tokens', String(T)]), '--seed', String(int(0, 2 ** 31))]);
      const exact = linearInOProj(c, v.w, v.inputs.get('layer.hidden_states')!.data, v.inputs.get('layer.dy')!.data, v.inputs.get('layer.dir.o_proj.weight')!.data, B, T, lengths ?? Array(B).fill(T));
      const jvp = v.expected.get('layer.jvp.o_proj.weight')!.data[0];
      // the stored value is the float64 one rounded to float32
      expect(Math.abs(jvp - exact) / Math.abs(exact), v.about).toBeLessThanOrEqual(2 ** -24 + 1e-9);
      // the float64 machinery itself, not rounded: exact to 1e-9
      const ev = jvpEvaluator({ config: c, weights: v.w, hidden: v.inputs.get('layer.hidden_states')!.data, B, T, lengths: lengths ?? undefined }, v.inputs.get('layer.dy')!.data);
      const r = ev.jvp('o_proj.weight', v.inputs.get('layer.dir.o_proj.weight')!.data);
      expect(Math.abs(r.jvp - exact) / Math.abs(exact), v.about).toBeLessThanOrEqual(1e-9);
    }
  });

  it('is linear in the direction: jvp(a·u + b·w) = a·jvp(u) + b·jvp(w) within the finite-difference error, for every tensor', () => {
    for (let run = 0; run < 2; run++) {
      const c = randomConfig();
      const [B, T] = [int(1, 2), int(2, 9)];
      const rand = mulberry32(int(0, 2 ** 31));
      const hidden = uniformOpen(B * T * c.hidden_size, rand).map((v) => 2 * v);
      const weights = Object.fromEntries(Object.entries(layerParamShapes(c)).map(([n, s]) => [n, uniformOpen(s.reduce((x, y) => x * y, 1), rand).map((v) => (n === 'o_norm.weight' ? 1 + v / 2 : v / 2))]));
      const ev = jvpEvaluator({ config: c, weights, hidden, B, T }, uniformOpen(B * T * c.hidden_size, rand));
      const [a, b] = [1.5, -0.75];
      for (const name of layerGradNames(c)) {
        const n = name === 'hidden_states' ? hidden.length : weights[name].length;
        const u = uniformOpen(n, rand);
        const w = uniformOpen(n, rand);
        const ju = ev.jvp(name, u);
        const jw = ev.jvp(name, w);
        const jm = ev.jvp(name, u.map((x, i) => a * x + b * w[i]));
        const scale = Math.abs(a * ju.jvp) + Math.abs(b * jw.jvp);
        const bound = Math.abs(a) * ju.fdError + Math.abs(b) * jw.fdError + jm.fdError + 1e-12 * scale;
        expect(Math.abs(jm.jvp - (a * ju.jvp + b * jw.jvp)), `${name} ${JSON.stringify(c)} B=${B} T=${T}`).toBeLessThanOrEqual(10 * bound);
      }
    }
  });

  it('momlab verify passes the expected file against itself and fails a jvp moved by 1e-3 relative, however small the jvp', async () => {
    const c = randomConfig();
    const seed = String(int(0, 2 ** 31));
    const v = await layerVectors('verify', c, ['--batch', String(int(1, 2)), '--tokens', String(int(3, 9)), '--seed', seed]);
    const own = await momlab('verify', '--vectors', v.out, '--outputs', join(v.out, 'expected.safetensors'));
    expect(own.code, own.out).toBe(0);
    const moved = async (dirPath: string, name: string) => {
      const f = parseSafetensors(readFileSync(join(dirPath, 'expected.safetensors')));
      const t: Record<string, TensorIn> = {};
      for (const [n, x] of f.tensors) t[n] = { shape: x.shape, data: x.data.slice() };
      (t[name].data as Float64Array)[0] *= 1 + 1e-3;
      const p = join(dir, `moved-${name}.safetensors`);
      writeFileSync(p, serializeSafetensors(t));
      return momlab('verify', '--vectors', dirPath, '--outputs', p, '--precision', 'fp32');
    };
    const nonzero = layerGradNames(c).filter((n) => v.expected.has(`layer.jvp.${n}`) && v.expected.get(`layer.jvp.${n}`)!.data[0] !== 0);
    const name = `layer.jvp.${pick(nonzero)}`;
    const r = await moved(v.out, name);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(new RegExp(`${name.replace(/\./g, '\\.')}\\s.*FAIL`));
    // o_proj scaled by 1e-6: every jvp is far below 1e-3, so the move is under the 1e-6 absolute pass, which jvps do not get
    const small = join(dir, 'small-weights.safetensors');
    const wt: Record<string, TensorIn> = {};
    for (const [n, s] of Object.entries(layerParamShapes(c))) wt[n] = { shape: s, data: n === 'o_proj.weight' ? v.w[n].map((x) => x * 1e-6) : v.w[n] };
    writeFileSync(small, serializeSafetensors(wt, { format: 'pt' }));
    const s = await layerVectors('verify-small', c, ['--weights', small, '--batch', '2', '--tokens', '5', '--seed', seed]);
    const target = layerGradNames(c).find((n) => s.expected.has(`layer.jvp.${n}`) && s.expected.get(`layer.jvp.${n}`)!.data[0] !== 0)!;
    expect(Math.abs(s.expected.get(`layer.jvp.${target}`)!.data[0]) * 1e-3).toBeLessThan(1e-6);
    const rs = await moved(s.out, `layer.jvp.${target}`);
    expect(rs.code, rs.out).toBe(1);
  });

  it('--lengths: the left-padded layer gets its gradients too, and verify passes them', async () => {
    for (let run = 0; run < 2; run++) {
      const c = randomConfig();
      const lengths = Array.from({ length: int(1, 4) }, () => int(1, 8));
      const v = await layerVectors(`lengths-${run}`, c, ['--lengths', lengths.join(','), '--seed', String(int(0, 2 ** 31))]);
      const [B, T] = [lengths.length, Math.max(...lengths)];
      expect(v.inputs.get('layer.dy')!.shape, v.about).toEqual([B, T, c.hidden_size]);
      expect(v.inputs.get('layer.dir.hidden_states')!.shape).toEqual([B, T, c.hidden_size]);
      expect(v.manifest.layer_grad.worst_fd_error).toBeLessThanOrEqual(MAX_FD_ERROR);
      const r = await momlab('verify', '--vectors', v.out, '--outputs', join(v.out, 'expected.safetensors'), '--only', 'layer.jvp.');
      expect(r.code, r.out).toBe(0);
    }
  });

  it('leaves out a jvp that is only rounding: with single_kv_proj and topk = num_memories every memory is the same, so y does not depend on the gate', async () => {
    for (let run = 0; run < 2; run++) {
      const E = int(2, 4);
      const c: LayerConfig = { hidden_size: int(6, 9), num_heads: 2, head_dim: 4, expand_v: 1, num_memories: E, topk: E, shared_mem: pick([true, false]), single_kv_proj: true, conv_size: int(2, 4), norm_eps: 1e-6 };
      const v = await layerVectors(`same-${run}`, c, ['--batch', String(int(1, 2)), '--tokens', String(int(2, 9)), '--seed', String(int(0, 2 ** 31))]);
      expect(Object.keys(v.manifest.layer_grad.skipped), v.about).toContain('layer.jvp.gate.weight');
      expect(v.expected.has('layer.jvp.gate.weight')).toBe(false);
      expect(v.inputs.has('layer.dir.gate.weight')).toBe(false);
      expect(v.expected.has('layer.jvp.q_proj.weight')).toBe(true);
    }
  });

  it('refuses, in one line naming the tensor and writing nothing, when the routing cannot be held fixed (all router logits tied)', async () => {
    const c = { ...randomConfig(), topk: 1 };
    const cfgPath = join(dir, 'tied.json');
    writeFileSync(cfgPath, JSON.stringify(c));
    const seed = String(int(0, 2 ** 31));
    const base = await layerVectors('tied-base', c, ['--batch', '1', '--tokens', '4', '--seed', seed]);
    const wt: Record<string, TensorIn> = {};
    for (const [n, s] of Object.entries(layerParamShapes(c))) wt[n] = { shape: s, data: n === 'gate.weight' ? new Float64Array(base.w[n].length) : base.w[n] };
    const wPath = join(dir, 'tied-weights.safetensors');
    writeFileSync(wPath, serializeSafetensors(wt, { format: 'pt' }));
    const out = join(dir, 'tied');
    const r = await momlab('vectors', '--config', cfgPath, '--weights', wPath, '--grad', '--batch', '1', '--tokens', '4', '--seed', seed, '--out', out);
    expect(r.code, r.out).toBe(2);
    expect(r.out.trim().split('\n')).toHaveLength(1);
    expect(r.out).toMatch(/gate\.weight.*routing/);
    expect(existsSync(join(out, 'manifest.json'))).toBe(false);
  });
});
