/**
 * Files in and out of the command line. Reads take regular files only, up to a cap (a device such
 * as /dev/zero or a FIFO would never end); writes never touch an input, never replace a file
 * without `force`, and go through a temporary name and a rename, so that an interrupted write
 * leaves no half file under the real name.
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, rename, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ConfigError, FormatError } from '../../reference/errors.js';

/** Open a file that must be a regular file of at most `maxBytes`; returns the handle and its size. */
export async function openRegular(path: string, maxBytes: number, what = 'file'): Promise<{ fh: FileHandle; size: number }> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new FormatError(`cannot read ${what} '${path}': ${(e as Error).message}`);
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    throw new FormatError(`${what} '${path}' is not a regular file (a directory, device or pipe)`);
  }
  if (st.size > maxBytes) {
    await fh.close();
    throw new FormatError(`${what} '${path}' is ${st.size} bytes, over the ${maxBytes}-byte limit for a ${what}`);
  }
  return { fh, size: st.size };
}

/** The whole of a regular file of at most `maxBytes`. */
export async function readRegular(path: string, maxBytes: number, what = 'file'): Promise<Buffer> {
  const { fh, size } = await openRegular(path, maxBytes, what);
  try {
    const buf = Buffer.alloc(size);
    const { bytesRead } = await fh.read(buf, 0, size, 0);
    if (bytesRead !== size) throw new FormatError(`${what} '${path}' changed while being read`);
    return buf;
  } finally {
    await fh.close();
  }
}

/** SHA-256 (hex) of a regular file, read in blocks. */
export async function sha256File(path: string, what = 'file'): Promise<string> {
  const { fh } = await openRegular(path, Number.MAX_SAFE_INTEGER, what);
  try {
    const hash = createHash('sha256');
    const block = Buffer.alloc(1 << 20);
    for (let at = 0; ; ) {
      const { bytesRead } = await fh.read(block, 0, block.length, at);
      if (bytesRead === 0) break;
      hash.update(block.subarray(0, bytesRead));
      at += bytesRead;
    }
    return hash.digest('hex');
  } finally {
    await fh.close();
  }
}

export const sha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');

export interface OutputPolicy {
  /** replace existing files */
  force: boolean;
  /** the files the command reads: never written, with or without force */
  inputs: string[];
}

const sameFile = async (a: string, b: string): Promise<boolean> => {
  const [sa, sb] = await Promise.all([stat(a).catch(() => null), stat(b).catch(() => null)]);
  return sa !== null && sb !== null && sa.dev === sb.dev && sa.ino === sb.ino;
};

/** Refuse, before anything is computed or written, an output that is an input, a directory, or an existing file without force. */
export async function checkOutputs(paths: string[], policy: OutputPolicy, command: string): Promise<void> {
  for (const p of paths) {
    const st = await stat(p).catch(() => null);
    if (!st) continue;
    for (const input of policy.inputs) if (await sameFile(p, input)) throw new ConfigError(`momlab ${command}: the output '${p}' is the input '${input}': refusing to overwrite an input`);
    if (!st.isFile()) throw new ConfigError(`momlab ${command}: the output '${p}' exists and is not a regular file`);
    if (!policy.force) throw new ConfigError(`momlab ${command}: the output '${p}' exists (pass --force to replace it)`);
  }
}

/** Write `data` to `path` through a temporary file in the same directory and a rename. */
export async function writeAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, data, { flag: 'wx' });
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    // Node's message names the temporary file: keep only its 'CODE: description' part
    throw new ConfigError(`cannot write '${path}': ${/^[A-Z]+: [^,]+/.exec((e as Error).message)?.[0] ?? (e as Error).message}`);
  }
}

/** A byte count for messages: KiB, MiB or GiB. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return `${n} bytes`;
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${Math.ceil(n / 2 ** 10)} KiB`;
}
