/**
 * safetensors, the format fla / PyTorch users save weights and tensors in:
 *   u64 (little-endian) N | N bytes of JSON header | data bytes
 * The header maps a tensor name to { dtype, shape, data_offsets: [begin, end] } (offsets relative
 * to the data section) plus an optional "__metadata__" of strings. We read F64, F32, F16 and BF16
 * into float64 (exact: every such value is a float64) and write F32.
 *
 * Everything a file can get wrong is refused with a FormatError naming the tensor and what was
 * expected, all of it checked from the header before any tensor is decoded: a truncated file, a
 * header over MAX_HEADER or not JSON, offsets outside the data or overlapping or leaving holes
 * (the format requires the tensors to tile the data section), a byte length that does not match
 * dtype x shape, an unsupported dtype. So the decoded tensors never take more than 4x the file.
 */
import { ConfigError, FormatError } from '../../reference/errors.js';
import { formatBytes, openRegular, writeAtomic } from './files.js';

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

/** A header larger than this is not a real file (the safetensors library caps it at 100 MB too). */
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

interface Entry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

interface Header {
  entries: Entry[];
  metadata: Record<string, string>;
}

/**
 * Validate a header (the JSON text, `dataBytes` the size of the data section) without decoding
 * anything: every entry's dtype, shape and offsets, size = dtype x shape, in range, the entries
 * tiling the data section with no overlap or hole.
 */
function checkHeader(text: Uint8Array, dataBytes: number, source: string): Header {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(text));
  } catch (e) {
    throw new FormatError(`${source}: the header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new FormatError(`${source}: the header is not a JSON object`);
  const entries: Entry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || Object.values(raw).some((v) => typeof v !== 'string')) {
        throw new FormatError(`${source}: __metadata__ must map strings to strings`);
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof info !== 'object' || info === null) throw new FormatError(`${source}: tensor '${name}': header entry is not an object`);
    if (typeof info.dtype !== 'string' || !Object.hasOwn(BYTES, info.dtype)) {
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
    if (end > dataBytes) {
      throw new FormatError(`${source}: tensor '${name}': data_offsets [${begin}, ${end}] run past the end of the data (${dataBytes} bytes): truncated file or a header that lies`);
    }
    const bytes = shape.reduce((a, b) => a * b, 1) * BYTES[dtype];
    if (end - begin !== bytes) {
      throw new FormatError(`${source}: tensor '${name}': ${dtype} of shape [${shape}] needs ${bytes} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
    }
    entries.push({ name, dtype, shape, begin, end });
  }
  // The format requires the tensors to tile the data section exactly: no overlap, no holes.
  const spans = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const { begin, end, name } of spans) {
    if (begin < at) throw new FormatError(`${source}: tensor '${name}': data_offsets [${begin}, ${end}] overlap the previous tensor (which ends at ${at})`);
    if (begin > at) throw new FormatError(`${source}: tensor '${name}': data_offsets start at ${begin}, leaving a hole after byte ${at}`);
    at = end;
  }
  if (at !== dataBytes) throw new FormatError(`${source}: ${dataBytes - at} bytes after the last tensor are not described by the header (corrupt file)`);
  return { entries, metadata };
}

/** The header length from the first 8 bytes, checked against the cap and the file size. */
function headerLength(first8: Uint8Array, fileBytes: number, source: string): number {
  if (fileBytes < 8) throw new FormatError(`${source}: truncated: ${fileBytes} bytes, less than the 8-byte header length`);
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER)) throw new FormatError(`${source}: header length ${n} is implausible (over ${MAX_HEADER} bytes): not a safetensors file`);
  if (8n + n > BigInt(fileBytes)) throw new FormatError(`${source}: truncated: the header says it is ${n} bytes but only ${fileBytes - 8} follow`);
  return Number(n);
}

/** Bytes the decoded tensors take (float64): at most 4x the data section (F16/BF16). */
const decodedBytes = (h: Header): number => h.entries.reduce((a, e) => a + 8 * ((e.end - e.begin) / BYTES[e.dtype]), 0);

function decodeAll(h: Header, data: Uint8Array, source: string): SafetensorsFile {
  const tensors = new Map<string, Tensor>();
  for (const e of h.entries) tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: decode(e.dtype, data.subarray(e.begin, e.end), (e.end - e.begin) / BYTES[e.dtype]) });
  return { source, tensors, metadata: h.metadata };
}

/** Parse a safetensors byte image. `source` names the file in error messages. */
export function parseSafetensors(bytes: Uint8Array, source = 'safetensors data'): SafetensorsFile {
  const n = headerLength(bytes.subarray(0, 8), bytes.byteLength, source);
  const h = checkHeader(bytes.subarray(8, 8 + n), bytes.byteLength - 8 - n, source);
  return decodeAll(h, bytes.subarray(8 + n), source);
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

export interface ReadOptions {
  /** refuse a file whose bytes plus decoded tensors exceed this (checked from the header, before reading the data) */
  maxMemory?: number;
}

/** Bytes a read takes: the file's data section plus the decoded tensors. */
export const footprint = (f: SafetensorsFile): number => [...f.tensors.values()].reduce((a, t) => a + 8 * t.data.length + BYTES[t.dtype] * t.data.length, 0);

/**
 * Read a safetensors file: a regular file only; the header is read and checked in full before
 * the data, and nothing is allocated beyond the file's size and the decoded tensors it describes.
 */
export async function readSafetensors(path: string, opts: ReadOptions = {}): Promise<SafetensorsFile> {
  const { fh, size } = await openRegular(path, Number.MAX_SAFE_INTEGER, 'safetensors file');
  try {
    const first8 = Buffer.alloc(8);
    await fh.read(first8, 0, Math.min(8, size), 0);
    const n = headerLength(first8, size, path);
    const text = Buffer.alloc(n);
    await fh.read(text, 0, n, 8);
    const h = checkHeader(text, size - 8 - n, path);
    const need = size - 8 - n + decodedBytes(h);
    if (opts.maxMemory !== undefined && need > opts.maxMemory) {
      throw new ConfigError(`${path}: reading it needs about ${formatBytes(need)}, over the memory budget of ${formatBytes(opts.maxMemory)} (--max-memory to change it)`);
    }
    const data = Buffer.alloc(size - 8 - n);
    const { bytesRead } = await fh.read(data, 0, data.length, 8 + n);
    if (bytesRead !== data.length) throw new FormatError(`${path}: the file changed while being read`);
    return decodeAll(h, data, path);
  } finally {
    await fh.close();
  }
}

export async function writeSafetensors(path: string, tensors: Record<string, TensorIn>, metadata?: Record<string, string>): Promise<void> {
  await writeAtomic(path, serializeSafetensors(tensors, metadata));
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
