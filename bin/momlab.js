#!/usr/bin/env node
// The `momlab` command. In a source checkout (src/cli/main.ts present) it runs the TypeScript
// through tsx, so development needs no build; an installed package runs the compiled dist/.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

process.env.XDG_RUNTIME_DIR ??= '/tmp';
const source = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
if (existsSync(source)) {
  const tsxCli = createRequire(import.meta.url).resolve('tsx/cli');
  const r = spawnSync(process.execPath, [tsxCli, source, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
} else {
  await import('../dist/src/cli/main.js');
}
