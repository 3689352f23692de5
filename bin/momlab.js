#!/usr/bin/env node
// The `momlab` command: runs src/cli/main.ts through tsx (no build step).
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Dawn prints these two lines from native code on every adapter request (it clamps lavapipe's
// limits, whatever the device asks for), so they can only be filtered out here, line by line.
const DAWN_NOISE = /^Warning: maxDynamic(?:Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.$/;
const NOISE_START = 'Warning: maxDynamic';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const tsxCli = require.resolve('tsx/cli');
const child = spawn(process.execPath, [tsxCli, join(here, '..', 'src', 'cli', 'main.ts'), ...process.argv.slice(2)], {
  stdio: ['inherit', 'inherit', 'pipe'],
  env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
});
let pending = '';
child.stderr.setEncoding('utf8');
child.stderr.on('data', (chunk) => {
  pending += chunk;
  for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
    const line = pending.slice(0, nl);
    pending = pending.slice(nl + 1);
    if (!DAWN_NOISE.test(line)) process.stderr.write(`${line}\n`);
  }
  // A partial line is held back only while it may still become one of the two lines.
  const mayBeNoise = pending.length <= NOISE_START.length ? NOISE_START.startsWith(pending) : pending.startsWith(NOISE_START);
  if (!mayBeNoise) {
    process.stderr.write(pending);
    pending = '';
  }
});
// Signals go to the child, so that what it prints while stopping still passes the filter.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('close', (code) => {
  if (pending) process.stderr.write(pending);
  process.exit(code ?? 1);
});
