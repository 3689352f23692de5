import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { expectTensor, parseSafetensors, serializeSafetensors } from '../src/io/safetensors.js';
import { layerParamShapes, parseLayerConfig } from '../reference/layer-config.js';
import { layerWeightsFrom } from '../src/io/layer-files.js';
import { initLayerWeights } from '../src/cli/init.js';
import { ConfigError, FormatError } from '../reference/errors.js';

/** Build a file by hand: header object + raw data bytes (to write dtypes and lies we never emit). */
function rawFile(header: Record<string, unknown>, data: Uint8Array, headerLen?: number): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen ?? h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

const grid = fc.integer({ min: -65536, max: 65536 }).map((i) => i / 256); // exact in float32

describe('safetensors', () => {
  test.prop([fc.array(fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 1, max: 5 })), { minLength: 1, maxLength: 4 }), fc.array(grid, { minLength: 100, maxLength: 100 })], { numRuns: 50 })(
    'F32 round trip keeps names, shapes, order and values (float32-exact values)',
    (dims, pool) => {
      const tensors: Record<string, { shape: number[]; data: number[] }> = {};
      dims.forEach(([a, b], i) => {
        const shape = [a, b];
        tensors[`t${i}.weight`] = { shape, data: Array.from({ length: a * b }, (_, j) => pool[(i * 7 + j) % pool.length]) };
      });
      const f = parseSafetensors(serializeSafetensors(tensors, { note: 'x' }));
      expect([...f.tensors.keys()]).toEqual(Object.keys(tensors));
      expect(f.metadata).toEqual({ note: 'x' });
      for (const [name, t] of Object.entries(tensors)) {
        expect(f.tensors.get(name)!.dtype).toBe('F32');
        expect(f.tensors.get(name)!.shape).toEqual(t.shape);
        expect(Array.from(f.tensors.get(name)!.data)).toEqual(t.data);
      }
    },
  );

  it('reads F16, BF16 and F64 into float64', () => {
    // F16: 1.0 = 0x3c00, -2.5 = 0xc100, 2^-24 (smallest subnormal) = 0x0001, 65504 = 0x7bff
    const f16 = new Uint8Array(new Uint16Array([0x3c00, 0xc100, 0x0001, 0x7bff]).buffer);
    // BF16: upper halves of float32 1.0 (0x3f80), -0.15625 (0xbe20), 3.0 (0x4040)
    const bf16 = new Uint8Array(new Uint16Array([0x3f80, 0xbe20, 0x4040, 0]).buffer);
    const f64 = new Uint8Array(new Float64Array([Math.PI]).buffer);
    const data = new Uint8Array([...f16, ...bf16, ...f64]);
    const f = parseSafetensors(rawFile({
      a: { dtype: 'F16', shape: [2, 2], data_offsets: [0, 8] },
      b: { dtype: 'BF16', shape: [4], data_offsets: [8, 16] },
      c: { dtype: 'F64', shape: [], data_offsets: [16, 24] },
    }, data));
    expect(Array.from(f.tensors.get('a')!.data)).toEqual([1, -2.5, 2 ** -24, 65504]);
    expect(Array.from(f.tensors.get('b')!.data)).toEqual([1, -0.15625, 3, 0]);
    expect(Array.from(f.tensors.get('c')!.data)).toEqual([Math.PI]);
  });

  const good = () => serializeSafetensors({ 'w.weight': { shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }, 'u.weight': { shape: [2], data: [7, 8] } });

  it('refuses a truncated file, naming the problem', () => {
    const g = good();
    expect(() => parseSafetensors(g.subarray(0, 5), 'f')).toThrow(/truncated/);
    expect(() => parseSafetensors(g.subarray(0, 20), 'f')).toThrow(/truncated: the header says/);
    expect(() => parseSafetensors(g.subarray(0, g.length - 4), 'f')).toThrow(/tensor 'u.weight'.*run past the end/);
  });

  it('refuses a corrupt header and a header that lies about offsets', () => {
    const data = new Uint8Array(24);
    expect(() => parseSafetensors(rawFile({}, data, 2), 'f')).toThrow(FormatError);
    const junk = new Uint8Array(16);
    new DataView(junk.buffer).setBigUint64(0, 8n, true);
    junk.set(new TextEncoder().encode('{"a":!!}'), 8);
    expect(() => parseSafetensors(junk, 'f')).toThrow(/not valid UTF-8 JSON/);
    expect(() => parseSafetensors(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 12] } }, data), 'f')).toThrow(/tensor 'a'.*needs 8 bytes.*span 12/);
    expect(() => parseSafetensors(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [4], data_offsets: [4, 20] } }, data), 'f')).toThrow(/'b'.*overlap/);
    expect(() => parseSafetensors(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [12, 20] } }, data), 'f')).toThrow(/'b'.*hole/);
    expect(() => parseSafetensors(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, data), 'f')).toThrow(/16 bytes after the last tensor/);
    expect(() => parseSafetensors(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, data), 'f')).toThrow(/'a'.*data_offsets/);
    expect(() => parseSafetensors(rawFile({ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, data), 'f')).toThrow(/'a'.*shape/);
  });

  it('refuses an unsupported dtype, naming the tensor', () => {
    expect(() => parseSafetensors(rawFile({ ids: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)), 'f')).toThrow(/tensor 'ids': dtype "I64" is not supported/);
  });

  it('names a missing tensor and a wrong shape', () => {
    const f = parseSafetensors(good(), 'w.safetensors');
    expect(expectTensor(f, 'w.weight', [2, 3]).length).toBe(6);
    expect(() => expectTensor(f, 'v.weight', [2, 3])).toThrow(/w.safetensors: missing tensor 'v.weight' \(expected shape \[2,3\]\)/);
    expect(() => expectTensor(f, 'w.weight', [3, 2])).toThrow(/tensor 'w.weight' has shape \[2,3\], expected \[3,2\]/);
  });
});

describe('layer weights file', () => {
  const cfg = parseLayerConfig({ hidden_size: 8, num_heads: 2, head_dim: 4, expand_v: 1, num_memories: 3, topk: 2, shared_mem: true, conv_size: 3 });
  const shapes = layerParamShapes(cfg);
  const w = initLayerWeights(cfg, 7);
  const file = (drop?: string, change?: [string, number[]], extra?: string) => {
    const t: Record<string, { shape: number[]; data: Float64Array }> = {};
    for (const [n, s] of Object.entries(shapes)) if (n !== drop) t[n] = { shape: s, data: w[n] };
    if (change) t[change[0]] = { shape: change[1], data: new Float64Array(change[1].reduce((a, b) => a * b, 1)) };
    if (extra) t[extra] = { shape: [1], data: new Float64Array([1]) };
    return parseSafetensors(serializeSafetensors(t), 'w.safetensors');
  };

  it('round-trips init weights under fla names (as float32)', () => {
    const got = layerWeightsFrom(file(), cfg);
    expect(Object.keys(got).sort()).toEqual(Object.keys(shapes).sort());
    for (const n of Object.keys(shapes)) expect(Array.from(got[n])).toEqual(Array.from(w[n], Math.fround));
    expect(shapes['k_proj.2.weight']).toEqual([8, 8]);
    expect(shapes['shared_a.weight']).toEqual([2, 8]);
    expect(shapes['v_conv1d.weight']).toEqual([8, 1, 3]);
  });

  it('refuses a missing tensor, a wrong shape and an unexpected tensor, by name', () => {
    expect(() => layerWeightsFrom(file('b_proj.1.weight'), cfg)).toThrow(/missing tensor 'b_proj.1.weight' \(expected shape \[2,8\]\)/);
    expect(() => layerWeightsFrom(file(undefined, ['A_log', [3]]), cfg)).toThrow(/tensor 'A_log' has shape \[3\], expected \[2\]/);
    expect(() => layerWeightsFrom(file(undefined, undefined, 'k_proj.3.weight'), cfg)).toThrow(/'k_proj.3.weight' not expected/);
  });

  it('single_kv_proj uses shared_* only', () => {
    const s = layerParamShapes(parseLayerConfig({ hidden_size: 8, num_heads: 2, head_dim: 4, num_memories: 3, single_kv_proj: true }));
    expect(Object.keys(s).some((n) => n.startsWith('k_proj'))).toBe(false);
    expect(s['shared_v.weight']).toEqual([16, 8]);
  });

  it('init follows fla: A_log in log(0,16), dt_bias = softplus^-1 of dt in [1e-3, 0.1], o_norm ones, bounded linear and conv', () => {
    const big = parseLayerConfig({ hidden_size: 64, num_heads: 64, head_dim: 4, num_memories: 2, topk: 1 });
    const wb = initLayerWeights(big, 3);
    for (const a of wb.A_log) expect(a).toBeLessThanOrEqual(Math.log(16));
    for (const d of wb.dt_bias) {
      const dt = Math.log1p(Math.exp(d));
      expect(dt).toBeGreaterThanOrEqual(0.001 - 1e-12);
      expect(dt).toBeLessThanOrEqual(0.1 + 1e-12);
    }
    expect(Array.from(wb['o_norm.weight']).every((x) => x === 1)).toBe(true);
    const bound = 2 ** -2.5 * Math.sqrt(6 / (64 + 256));
    expect(Math.max(...wb['q_proj.weight'].map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...wb['q_proj.weight'].map(Math.abs))).toBeGreaterThan(0.9 * bound);
    expect(Math.max(...wb['k_conv1d.weight'].map(Math.abs))).toBeLessThanOrEqual(0.5);
    expect(Array.from(initLayerWeights(big, 3)['gate.weight'])).toEqual(Array.from(wb['gate.weight']));
  });
});

describe('layer config', () => {
  it('refuses unknown keys by name and bad values', () => {
    expect(() => parseLayerConfig({ hidden_size: 8, vocab_size: 10, attn_mode: 'chunk' })).toThrow(/unknown keys 'vocab_size', 'attn_mode'/);
    expect(() => parseLayerConfig({ num_memories: 2, topk: 3 })).toThrow(ConfigError);
    expect(() => parseLayerConfig({ num_memories: 2, topk: 3 })).toThrow(/topk = 3/);
    expect(() => parseLayerConfig({ head_dim: 3, expand_v: 0.5 })).toThrow(/expand_v/);
    expect(() => parseLayerConfig({ conv_size: 0 })).toThrow(/conv_size/);
    expect(() => parseLayerConfig({ shared_mem: 'yes' })).toThrow(/shared_mem/);
    expect(() => parseLayerConfig([1])).toThrow(/JSON object/);
  });
});
