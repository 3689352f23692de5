/**
 * Entry point of the tensor-core probe (bench/tensor-cores.ts): every variant, printed as JSON
 * lines and written to DIR/tensor-cores.json.
 *   npx tsx bench/tensor-cores-run.ts [--n 4096] [--out DIR]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ALL_VARIANTS, measureTensorCores } from './tensor-cores.js';

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const result = await measureTensorCores({ n: Number(arg('n', '4096')), variants: ALL_VARIANTS });
const outDir = arg('out', '');
if (outDir) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'tensor-cores.json'), JSON.stringify(result, null, 2));
}
