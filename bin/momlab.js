#!/usr/bin/env node
// The `momlab` command. In a source checkout (src/cli/main.ts present) it runs the TypeScript
// through tsx, so development needs no build; an installed package runs the compiled dist/.
// Either way the command runs in a child process whose stderr passes a filter (below).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

// Dawn prints these two lines from native code on every adapter request (it clamps lavapipe's
// limits, whatever the device asks for), so they can only be filtered out here, line by line.
const DAWN_NOISE = /^Warning: maxDynamic(?:Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.$/;
const NOISE_START = 'Warning: maxDynamic';

const source = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const entry = existsSync(source)
  ? [createRequire(import.meta.url).resolve('tsx/cli'), source]
  : [fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url))];
const child = spawn(process.execPath, [...entry, ...process.argv.slice(2)], {
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
// Exit once the filtered stderr has drained (process.exit drops writes still queued to a pipe).
child.on('close', (code, signal) => {
  process.stderr.write(pending, () => process.exit(code ?? (signal ? 1 : 0)));
});
