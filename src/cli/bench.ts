/**
 * `momlab bench` (also `npm run bench`): bench/run.ts, the reference bench and the GPU bench,
 * one table; `--write` appends it to docs/perf.md. Compiled with the package, so it runs from an
 * installed copy as well as from a checkout.
 */
import { ConfigError } from '../../reference/errors.js';
import { runBench } from '../../bench/run.js';
import { parseArgs } from './args.js';

export const usage = `usage: momlab bench [--sizes small|large] [--write]

Measures the float64 reference (gated-delta steps per second, one core) and the GPU forward and
decode on the available adapter, and prints one table with date and device.
  --sizes   small (default: seconds, even on a software driver) or large (the issue's shapes: a big GPU)
  --write   append the rows to docs/perf.md (in a source checkout)`;

export async function run(argv: string[]): Promise<number> {
  const { flags, positional } = parseArgs(argv, { sizes: 'string', write: 'boolean' }, 'bench');
  if (positional.length > 0) throw new ConfigError(`momlab bench: unexpected argument '${positional[0]}' (see momlab bench --help)`);
  const sizes = flags.sizes ?? 'small';
  if (sizes !== 'small' && sizes !== 'large') throw new ConfigError(`momlab bench: --sizes must be small or large, got '${String(sizes)}'`);
  await runBench({ sizes, write: flags.write === true, command: `momlab bench${argv.length ? ` ${argv.join(' ')}` : ''}` });
  return 0;
}
