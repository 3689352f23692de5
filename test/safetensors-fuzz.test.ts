/**
 * The safetensors reader under hostile input: valid files of random dtypes and shapes, then one
 * mutation (a header field replaced, the header length rewritten, a byte flipped, the file cut or
 * extended). The reader only ever returns tensors consistent with the file or throws FormatError,
 * and what it decodes stays within the file: at most 4 float64 bytes per data byte (F16/BF16),
 * every value backed by bytes of the file. Bounded by numRuns.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FormatError } from '../reference/errors.js';
import { parseSafetensors, readSafetensors, type SafetensorsFile } from '../src/io/safetensors.js';

const BYTES = { F64: 8, F32: 4, F16: 2, BF16: 2 } as const;
type DType = keyof typeof BYTES;

interface Spec {
  name: string;
  dtype: DType;
  shape: number[];
}

/** A valid file: the tensors laid out in order, random bytes as data. */
function build(specs: Spec[], fill: number): { header: Record<string, unknown>; data: Uint8Array } {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let at = 0;
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1) * BYTES[s.dtype];
    header[s.name] = { dtype: s.dtype, shape: s.shape, data_offsets: [at, at + n] };
    at += n;
  }
  const data = new Uint8Array(at);
  for (let i = 0; i < at; i++) data[i] = (fill + i * 131) & 0xff;
  return { header, data };
}

function assemble(header: unknown, data: Uint8Array, headerLen?: bigint): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLen ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

const specArb: fc.Arbitrary<Spec[]> = fc.uniqueArray(
  fc.record({
    name: fc.oneof(fc.constantFrom('a', 'b.weight', 'layer.y', '__proto__', 'x'.repeat(40)), fc.string({ minLength: 1, maxLength: 6 })),
    dtype: fc.constantFrom<DType>('F64', 'F32', 'F16', 'BF16'),
    shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }),
  }),
  { minLength: 1, maxLength: 5, selector: (s) => s.name },
).filter((specs) => specs.every((s) => s.name !== '__metadata__'));

/** Values a lying header might hold. */
const hostile = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(2 ** 53, 2 ** 64, 1e308, -1, 0.5, '0', [0, 2 ** 40], [5, 4], [0, 0], [2 ** 31, 2 ** 31 + 8]),
  fc.array(fc.integer({ min: -2, max: 2 ** 31 }), { maxLength: 3 }),
);

type Mutation =
  | { kind: 'field'; entry: number; field: 'dtype' | 'shape' | 'data_offsets' | 'entry'; value: unknown }
  | { kind: 'same-span'; copies: number }
  | { kind: 'header-length'; value: bigint }
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'cut'; at: number }
  | { kind: 'extend'; bytes: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('field' as const), entry: fc.nat(), field: fc.constantFrom('dtype' as const, 'shape' as const, 'data_offsets' as const, 'entry' as const), value: hostile }),
  fc.record({ kind: fc.constant('same-span' as const), copies: fc.integer({ min: 1, max: 60 }) }),
  fc.record({ kind: fc.constant('header-length' as const), value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('extend' as const), bytes: fc.integer({ min: 1, max: 64 }) }),
);

function mutate(specs: Spec[], fill: number, m: Mutation): Uint8Array {
  const { header, data } = build(specs, fill);
  const names = specs.map((s) => s.name);
  switch (m.kind) {
    case 'field': {
      const name = names[m.entry % names.length];
      if (m.field === 'entry') header[name] = m.value;
      else (header[name] as Record<string, unknown>)[m.field] = m.value;
      return assemble(header, data);
    }
    case 'same-span': {
      // entries that all point at the first tensor's bytes
      const first = header[names[0]];
      for (let i = 0; i < m.copies; i++) header[`copy${i}`] = first;
      return assemble(header, data);
    }
    case 'header-length':
      return assemble(header, data, m.value);
    case 'flip': {
      const bytes = assemble(header, data);
      bytes[m.at % bytes.length] ^= 1 << m.bit;
      return bytes;
    }
    case 'cut': {
      const bytes = assemble(header, data);
      return bytes.subarray(0, m.at % bytes.length);
    }
    case 'extend': {
      const bytes = assemble(header, data);
      const out = new Uint8Array(bytes.length + m.bytes);
      out.set(bytes);
      return out;
    }
  }
}

/** What a returned file must satisfy: shapes match the values, and they fit in the file's bytes. */
function consistent(f: SafetensorsFile, fileBytes: number): void {
  let values = 0;
  let dataBytes = 0;
  for (const t of f.tensors.values()) {
    expect(t.data.length).toBe(t.shape.reduce((a, b) => a * b, 1));
    values += t.data.length;
    dataBytes += t.data.length * BYTES[t.dtype];
  }
  expect(dataBytes).toBeLessThanOrEqual(fileBytes);
  expect(8 * values).toBeLessThanOrEqual(4 * fileBytes);
}

const ok = (e: unknown) => {
  if (!(e instanceof FormatError)) throw new Error(`not a FormatError: ${String(e)}`);
};

describe('safetensors reader under mutated files', () => {
  it('returns consistent tensors or throws FormatError, never anything else', () => {
    let refused = 0;
    let read = 0;
    fc.assert(
      fc.property(specArb, fc.nat(255), mutationArb, (specs, fill, m) => {
        const bytes = mutate(specs, fill, m);
        try {
          consistent(parseSafetensors(bytes, 'fuzzed'), bytes.length);
          read++;
        } catch (e) {
          ok(e);
          refused++;
        }
      }),
      { numRuns: 400 },
    );
    // both outcomes occur, so the property is not vacuous either way
    expect(refused).toBeGreaterThan(50);
    expect(read).toBeGreaterThan(10);
  });

  it('the file reader agrees with the byte parser', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'momlab-st-fuzz-'));
    await fc.assert(
      fc.asyncProperty(specArb, fc.nat(255), mutationArb, async (specs, fill, m) => {
        const bytes = mutate(specs, fill, m);
        const p = join(dir, 'f.safetensors');
        writeFileSync(p, bytes);
        let fromBytes: SafetensorsFile | null = null;
        try {
          fromBytes = parseSafetensors(bytes, p);
        } catch (e) {
          ok(e);
        }
        try {
          const f = await readSafetensors(p);
          consistent(f, bytes.length);
          expect(fromBytes).not.toBeNull();
          expect([...f.tensors.keys()]).toEqual([...fromBytes!.tensors.keys()]);
        } catch (e) {
          ok(e);
          expect(fromBytes).toBeNull();
        }
      }),
      { numRuns: 100 },
    );
  });

  it('60 entries over one span are refused without decoding them', () => {
    const n = 1 << 20; // 4 MiB of F32: 60 decoded copies would be 480 MiB of float64
    const header: Record<string, unknown> = {};
    for (let i = 0; i < 60; i++) header[`t${i}`] = { dtype: 'F32', shape: [n], data_offsets: [0, 4 * n] };
    const bytes = assemble(header, new Uint8Array(4 * n));
    const before = process.memoryUsage().arrayBuffers;
    expect(() => parseSafetensors(bytes, 'f')).toThrow(/overlap the previous tensor/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 2 ** 20);
  });
});
