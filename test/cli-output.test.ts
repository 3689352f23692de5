import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../src/cli/main.js';

const quiet = { stdout: { write: () => {} }, stderr: { write: () => {} } };

/**
 * Runs `node bin/momlab.js args` with its stdout a pipe that nobody reads until the command has
 * exited or `holdMs` has passed: a command that exits with output still queued loses it.
 */
function runWithSlowReader(args: string[], holdMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/momlab.js', ...args], { env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' } });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.pause();
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    let code: number | null = null;
    let exited = false;
    let readerDone = false;
    const finish = () => exited && readerDone && resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: err });
    const read = () => {
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stdout.on('end', () => ((readerDone = true), finish()));
      child.stdout.resume();
    };
    const timer = setTimeout(read, holdMs);
    child.on('exit', (c) => {
      code = c;
      exited = true;
      if (timer) clearTimeout(timer);
      if (!child.stdout.listenerCount('data')) read();
      finish();
    });
  });
}

describe('command-line output through a pipe', () => {
  it('a --json report longer than a pipe buffer arrives whole, however slowly the pipe is read', async () => {
    // Outputs from another seed fail every tensor, and a failing tensor's row says where: a report
    // of about half a megabyte, far more than a pipe and the reader's buffer hold.
    const seed = 1 + Math.floor(Math.random() * 1e6);
    const dir = mkdtempSync(join(tmpdir(), 'momlab-pipe-'));
    const [suite, other] = [join(dir, 'suite'), join(dir, 'other')];
    expect(await runCli(['vectors', '--suite', 'edge', '--grad', '--seed', String(seed), '--out', suite], quiet)).toBe(0);
    expect(await runCli(['vectors', '--suite', 'edge', '--grad', '--seed', String(seed + 1), '--out', other], quiet)).toBe(0);
    const index = JSON.parse(readFileSync(join(suite, 'index.json'), 'utf8')) as { cases: { name: string; dir: string }[] };
    mkdirSync(join(dir, 'out'));
    for (const c of index.cases) copyFileSync(join(other, c.dir, 'expected.safetensors'), join(dir, 'out', `${c.name}.safetensors`));
    const r = await runWithSlowReader(['verify', '--vectors', suite, '--outputs', join(dir, 'out'), '--json'], 15_000);
    expect(r.code, `seed ${seed}: ${r.stderr}`).toBe(1);
    expect(r.stdout.length, `seed ${seed}`).toBeGreaterThan(4 * 65536);
    const report = JSON.parse(r.stdout) as { passed: boolean; cases: { case: string; report: { rows: unknown[] } }[] };
    expect(report.passed).toBe(false);
    expect(report.cases.map((c) => c.case), `seed ${seed}`).toEqual(index.cases.map((c) => c.name));
    for (const c of report.cases) expect(c.report.rows.length, `seed ${seed}, case ${c.case}`).toBeGreaterThan(0);
  }, 120_000);
});
