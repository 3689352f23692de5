/**
 * What a command gets besides its arguments: where to write, and the memory budget every command
 * checks its request against before allocating (docs/refusals.md).
 */
import { ConfigError } from '../../reference/errors.js';
import { formatBytes } from '../io/files.js';

export interface Sink {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface CliContext {
  stdout: Sink;
  stderr: Sink;
  /** bytes a request may allocate (--max-memory) */
  maxMemory: number;
}

/** Well under the 24 GiB of the machines momlab runs on, and enough for every default request. */
export const DEFAULT_MAX_MEMORY = 4 * 2 ** 30;

export function processContext(): CliContext {
  return { stdout: process.stdout, stderr: process.stderr, maxMemory: DEFAULT_MAX_MEMORY };
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, kb: 1e3, kib: 2 ** 10, m: 2 ** 20, mb: 1e6, mib: 2 ** 20, g: 2 ** 30, gb: 1e9, gib: 2 ** 30 };

/** '512MiB', '2G', '1e9' -> bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined || !(Number(m[1]) > 0)) throw new ConfigError(`momlab: --max-memory needs a size such as 2GiB, 512MiB or 1e9 (bytes), got '${text}'`);
  return Number(m[1]) * unit;
}

/** Refuse a request whose estimated allocation is over the budget, with both figures. */
export function checkMemory(ctx: CliContext, command: string, what: string, bytes: number): void {
  if (!(bytes <= ctx.maxMemory)) {
    throw new ConfigError(`momlab ${command}: ${what} needs about ${formatBytes(bytes)}, over the memory budget of ${formatBytes(ctx.maxMemory)} (--max-memory to change it)`);
  }
}

/** Bytes of the float64 arrays of one core problem (docs/spec.md §4): inputs, per-memory outputs, states; 4x for copies and float32 mirrors. */
export function coreBytes(c: { B: number; T: number; H: number; E: number; dk: number; dv: number }): number {
  const slots = c.E + 1;
  const perToken = c.H * c.dk + c.E + slots * c.H * (3 * c.dk + 2 * c.dv + 1);
  return 4 * 8 * (c.B * c.T * perToken + 2 * slots * c.B * c.H * c.dk * c.dv);
}
