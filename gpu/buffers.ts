/**
 * Upload, readback and canaries. Every output buffer is allocated with CANARY_WORDS extra 32-bit
 * words after its payload, filled with a bit pattern no kernel writes; readback checks they come
 * back untouched, so an out-of-bounds write is an error instead of a silent corruption.
 */
import { GpuError } from '../reference/errors.js';
import type { GpuContext } from './device.js';
import { withErrorScope } from './device.js';

// WebGPU's numeric flags, spelled out: in Node the GPU* globals exist only after Dawn loads.
export const Usage = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80, QUERY_RESOLVE: 0x200 } as const;
const MAP_READ_MODE = 0x1; // GPUMapMode.READ

export const CANARY_WORDS = 64;
/** A signalling-NaN bit pattern: no arithmetic result produces it. */
export const CANARY_BITS = 0x7fa5a5a5;

const STORAGE = Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST;

function checkBinding(ctx: GpuContext, label: string, bytes: number): void {
  const max = ctx.limits.maxStorageBufferBindingSize;
  if (bytes > max) {
    throw new GpuError(`buffer '${label}' needs ${bytes} bytes, over the device limit maxStorageBufferBindingSize = ${max}`);
  }
}

/** A storage buffer holding `data` as float32 (or u32/i32 when given as such). Min 16 bytes. */
export function upload(ctx: GpuContext, label: string, data: Float64Array | Float32Array | Uint32Array | Int32Array): GPUBuffer {
  const words = data instanceof Float64Array ? Float32Array.from(data) : data;
  const size = Math.max(16, words.byteLength + 3) & ~3;
  checkBinding(ctx, label, size);
  const buf = ctx.createBuffer({ label, size, usage: STORAGE, mappedAtCreation: true });
  new Uint8Array(buf.getMappedRange()).set(new Uint8Array(words.buffer, words.byteOffset, words.byteLength));
  buf.unmap();
  return buf;
}

/** An output buffer of `words` 32-bit words followed by the canary. */
export function outputBuffer(ctx: GpuContext, label: string, words: number, init?: Float32Array | Uint32Array): GPUBuffer {
  const size = (words + CANARY_WORDS) * 4;
  checkBinding(ctx, label, size);
  const buf = ctx.createBuffer({ label, size, usage: STORAGE, mappedAtCreation: true });
  const u = new Uint32Array(buf.getMappedRange());
  u.fill(CANARY_BITS, words);
  if (init) u.set(new Uint32Array(init.buffer, init.byteOffset, Math.min(words, init.length)));
  buf.unmap();
  return buf;
}

/** A scratch storage buffer (no canary), zero-initialised. */
export function scratchBuffer(ctx: GpuContext, label: string, words: number): GPUBuffer {
  const size = Math.max(16, words * 4);
  checkBinding(ctx, label, size);
  return ctx.createBuffer({ label, size, usage: STORAGE });
}

/** A uniform buffer with the given u32/f32 words (std140-friendly: pass multiples of 4 words). */
export function uniforms(ctx: GpuContext, label: string, words: ArrayLike<number>, floats: readonly number[] = []): GPUBuffer {
  const n = Math.max(4, Math.ceil(words.length / 4) * 4);
  const buf = ctx.createBuffer({ label, size: n * 4, usage: Usage.UNIFORM | Usage.COPY_DST, mappedAtCreation: true });
  const u = new Uint32Array(buf.getMappedRange());
  const f = new Float32Array(u.buffer);
  for (let i = 0; i < words.length; i++) u[i] = words[i] >>> 0;
  for (const i of floats) f[i] = words[i];
  buf.unmap();
  return buf;
}

/** A buffer the CPU maps to read back `words` 32-bit words of an output and its canary. */
export function stagingBuffer(ctx: GpuContext, label: string, words: number): GPUBuffer {
  return ctx.createBuffer({ label, size: (words + CANARY_WORDS) * 4, usage: Usage.MAP_READ | Usage.COPY_DST });
}

/** Map `staging` (its copies already submitted), take a copy of its words and unmap it. */
export async function mapWords(ctx: GpuContext, staging: GPUBuffer): Promise<Uint32Array> {
  await staging.mapAsync(MAP_READ_MODE);
  const u = new Uint32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  ctx.checkHealthy();
  return u;
}

/** Copy `words` 32-bit words (plus the canary when `canary`) back to the CPU. */
export async function readback(ctx: GpuContext, buf: GPUBuffer, words: number, canary = true): Promise<Float32Array> {
  const total = canary ? words + CANARY_WORDS : words;
  const staging = ctx.device.createBuffer({ label: `${buf.label}:readback`, size: Math.max(16, total * 4), usage: Usage.MAP_READ | Usage.COPY_DST });
  const enc = ctx.device.createCommandEncoder();
  enc.copyBufferToBuffer(buf, 0, staging, 0, total * 4);
  ctx.device.queue.submit([enc.finish()]);
  const copy = await mapWords(ctx, staging);
  staging.destroy();
  if (canary) checkCanary(buf.label, copy, words);
  return new Float32Array(copy.buffer, 0, words);
}

/**
 * One submission that runs `encode` and copies `out` (`words` words and its canary) into
 * `staging` (from stagingBuffer), then the read-back with the canary checked: a decode step's
 * single round trip, allocating no GPU buffer.
 */
export async function submitAndRead(ctx: GpuContext, what: string, encode: (enc: GPUCommandEncoder) => void, out: GPUBuffer, words: number, staging: GPUBuffer): Promise<Float32Array> {
  await withErrorScope(ctx, what, () => {
    const enc = ctx.device.createCommandEncoder({ label: what });
    encode(enc);
    enc.copyBufferToBuffer(out, 0, staging, 0, (words + CANARY_WORDS) * 4);
    ctx.device.queue.submit([enc.finish()]);
  });
  const u = await mapWords(ctx, staging);
  checkCanary(out.label, u, words);
  return new Float32Array(u.buffer, 0, words);
}

export function checkCanary(label: string, u: Uint32Array, words: number): void {
  for (let i = words; i < words + CANARY_WORDS; i++) {
    if (u[i] !== CANARY_BITS) {
      throw new GpuError(`canary overwritten after buffer '${label}' at word ${i - words} past its end (${words} words): a kernel wrote out of bounds`);
    }
  }
}
