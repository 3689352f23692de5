/**
 * The contract between the MoM pipeline (gpu/mom.ts, gpu/decode.ts) and the per-rule kernels
 * (gpu/kernels/<rule>.ts, and gpu/kernels/from-text.ts for rules written as math).
 *
 * Rule kernels work on the *gathered, variable-length* form (docs/spec.md §4, fla's `cu_seqlens`):
 * the gather has placed the tokens of segment s at positions p in [cu[s], cu[s+1]), in time
 * order. A segment is one (memory slot e, batch b) pair, s = e * B + b; slot e = E is the shared
 * memory when enabled. Each segment is an independent sequence with its own state.
 *
 * Buffers (float32 unless noted; all row-major):
 *   cu       u32 [S + 1]             segment offsets into the positions
 *   q        [P, H, dk]              queries, already scaled by s (docs/spec.md §4)
 *   inputs   one per rule input, in `rule.inputs` order: [P, H, width] (width dk, dv or 1)
 *   state    [S, H, dk, dv]          read_write: the initial state in, the final state out
 *   o        [P, H, dv]              the memory's own read-out after each token's update
 *   history  [P, H, dk, dv]          optional: the state after each token (mix-before path)
 */
import type { InputDecl } from '../../reference/types.js';
import type { GpuContext } from '../device.js';

export type KernelMode = 'chunk' | 'recurrent';
export const CHUNK_SIZES = [16, 32, 64] as const;
export type ChunkSize = (typeof CHUNK_SIZES)[number];

export interface RuleDims {
  /** number of segments S */
  segments: number;
  /** number of gathered positions P */
  positions: number;
  H: number;
  dk: number;
  dv: number;
  /**
   * how many of the last segments are the shared memory's (0 or absent: none); a kernel may lay
   * them out differently (their chains are the longest: every token of a batch)
   */
  sharedSegments?: number;
}

export interface RuleBuffers {
  cu: GPUBuffer;
  q: GPUBuffer;
  inputs: GPUBuffer[];
  state: GPUBuffer;
  o: GPUBuffer;
  history?: GPUBuffer;
}

export interface RuleRunOptions {
  mode: KernelMode;
  /** chunk size for mode 'chunk' */
  chunk?: ChunkSize;
}

export interface GpuRule {
  readonly name: string;
  readonly inputs: readonly InputDecl[];
  readonly readLinear: boolean;
  /** Modes this rule has kernels for (text rules: 'recurrent' only). */
  readonly modes: readonly KernelMode[];
  /**
   * Record the rule's kernel dispatches into `enc` (no submit, no readback, no allocation of
   * buffers that depend on T, so decode stays allocation-free after its first step).
   * `history` is only supported in mode 'recurrent'.
   */
  encode(ctx: GpuContext, enc: GPUCommandEncoder, dims: RuleDims, buffers: RuleBuffers, opts: RuleRunOptions): void;
}
