/**
 * safetensors, the format fla / PyTorch users save weights and tensors in:
 *   u64 (little-endian) N | N bytes of JSON header | data bytes
 * The header maps a tensor name to { dtype, shape, data_offsets: [begin, end] } (offsets relative
 * to the data section) plus an optional "__metadata__" of strings. We read F64, F32, F16 and BF16
 * into float64 (exact: every such value is a float64) and write F32.
 *
 * Everything a file can get wrong is refused with a FormatError naming the tensor and what was
 * expected: a truncated file, a header that is not JSON, offsets outside the data or overlapping
 * or leaving holes (the format requires the tensors to tile the data section), a byte length
 * that does not match dtype x shape, an unsupported dtype.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { FormatError } from '../../reference/errors.js';

export type DType = 'F64' | 'F32' | 'F16' | 'BF16';
const BYTES: Record<DType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2 };

export interface Tensor {
  /** the dtype stored in the file */
  dtype: DType;
  shape: number[];
  /** the values, widened to float64 */
  data: Float64Array;
}

export interface SafetensorsFile {
  /** where it came from, for messages */
  source: string;
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

/** What one writes: row-major values and a shape (stored as F32). */
export interface TensorIn {
  shape: readonly number[];
  data: ArrayLike<number>;
}

// A header larger than this is not a real file (safetensors itself caps it at 100 MB).
const MAX_HEADER = 100 * 1024 * 1024;

function f16ToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function decode(dtype: DType, bytes: Uint8Array, n: number): Float64Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float64Array(n);
  switch (dtype) {
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true);
      break;
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = f16ToNumber(view.getUint16(2 * i, true));
      break;
    case 'BF16': {
      // bf16 is the upper half of a float32
      const tmp = new DataView(new ArrayBuffer(4));
      for (let i = 0; i < n; i++) {
        tmp.setUint32(0, view.getUint16(2 * i, true) << 16, false);
        out[i] = tmp.getFloat32(0, false);
      }
      break;
    }
  }
  return out;
}

const isDim = (d: unknown): d is number => typeof d === 'number' && Number.isInteger(d) && d >= 0;

/** Parse a safetensors byte image. `source` names the file in error messages. */
export function parseSafetensors(bytes: Uint8Array, source = 'safetensors data'): SafetensorsFile {
  if (bytes.byteLength < 8) throw new FormatError(`${source}: truncated: ${bytes.byteLength} bytes, less than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (n > MAX_HEADER) throw new FormatError(`${source}: header length ${n} is implausible (over ${MAX_HEADER} bytes): not a safetensors file`);
  if (8 + n > bytes.byteLength) throw new FormatError(`${source}: truncated: the header says it is ${n} bytes but only ${bytes.byteLength - 8} follow`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw new FormatError(`${source}: the header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new FormatError(`${source}: the header is not a JSON object`);
  const data = bytes.subarray(8 + n);
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  const spans: [number, number, string][] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Object.values(raw).some((v) => typeof v !== 'string')) {
        throw new FormatError(`${source}: __metadata__ must map strings to strings`);
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof info !== 'object' || info === null) throw new FormatError(`${source}: tensor '${name}': header entry is not an object`);
    if (typeof info.dtype !== 'string' || !(info.dtype in BYTES)) {
      throw new FormatError(`${source}: tensor '${name}': dtype ${JSON.stringify(info.dtype)} is not supported (expected one of F32, F16, BF16, F64)`);
    }
    const dtype = info.dtype as DType;
    if (!Array.isArray(info.shape) || !info.shape.every(isDim)) throw new FormatError(`${source}: tensor '${name}': shape ${JSON.stringify(info.shape)} is not a list of non-negative integers`);
    const shape = info.shape as number[];
    const off = info.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every(isDim) || off[0] > off[1]) {
      throw new FormatError(`${source}: tensor '${name}': data_offsets ${JSON.stringify(off)} is not [begin, end] with begin <= end`);
    }
    const [begin, end] = off as [number, number];
    const count = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * BYTES[dtype]) {
      throw new FormatError(`${source}: tensor '${name}': ${dtype} of shape [${shape}] needs ${count * BYTES[dtype]} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
    }
    if (end > data.byteLength) {
      throw new FormatError(`${source}: tensor '${name}': data_offsets [${begin}, ${end}] run past the end of the data (${data.byteLength} bytes): truncated file or a header that lies`);
    }
    spans.push([begin, end, name]);
    tensors.set(name, { dtype, shape, data: decode(dtype, data.subarray(begin, end), count) });
  }
  // The format requires the tensors to tile the data section exactly: no overlap, no holes.
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let at = 0;
  for (const [begin, end, name] of spans) {
    if (begin < at) throw new FormatError(`${source}: tensor '${name}': data_offsets [${begin}, ${end}] overlap the previous tensor (which ends at ${at})`);
    if (begin > at) throw new FormatError(`${source}: tensor '${name}': data_offsets start at ${begin}, leaving a hole after byte ${at}`);
    at = end;
  }
  if (at !== data.byteLength) throw new FormatError(`${source}: ${data.byteLength - at} bytes after the last tensor are not described by the header (corrupt file)`);
  return { source, tensors, metadata };
}

/** Serialise tensors as F32 (insertion order), with optional string metadata. */
export function serializeSafetensors(tensors: Record<string, TensorIn>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let at = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new FormatError(`tensor '${name}': shape [${t.shape}] holds ${count} values but ${t.data.length} were given`);
    header[name] = { dtype: 'F32', shape: [...t.shape], data_offsets: [at, at + 4 * count] };
    at += 4 * count;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned (as the Python writer does).
  json += ' '.repeat((8 - ((8 + new TextEncoder().encode(json).byteLength) % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.byteLength + at);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(head.byteLength), true);
  out.set(head, 8);
  let p = 8 + head.byteLength;
  for (const t of Object.values(tensors)) {
    for (let i = 0; i < t.data.length; i++, p += 4) view.setFloat32(p, t.data[i], true);
  }
  return out;
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new FormatError(`cannot read '${path}': ${(e as Error).message}`);
  }
  return parseSafetensors(bytes, path);
}

export async function writeSafetensors(path: string, tensors: Record<string, TensorIn>, metadata?: Record<string, string>): Promise<void> {
  await writeFile(path, serializeSafetensors(tensors, metadata));
}

/** The tensor `name` with exactly `shape`, or a FormatError saying what is missing or wrong. */
export function expectTensor(file: SafetensorsFile, name: string, shape: readonly number[]): Float64Array {
  const t = file.tensors.get(name);
  if (!t) throw new FormatError(`${file.source}: missing tensor '${name}' (expected shape [${shape}])`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new FormatError(`${file.source}: tensor '${name}' has shape [${t.shape}], expected [${shape}]`);
  }
  return t.data;
}
