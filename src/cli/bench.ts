/**
 * `momlab bench` (also `npm run bench`): bench/run.ts, the reference bench and the GPU bench,
 * one table; `--write` appends it to docs/perf.md. Compiled with the package, so it runs from an
 * installed copy as well as from a checkout.
 */
import { ConfigError } from '../../reference/errors.js';
import { benchRule } from '../../bench/rule.js';
import { runBench } from '../../bench/run.js';
import { resolveRule } from '../rules.js';
import { parseArgs } from './args.js';
import { processContext, type CliContext } from './context.js';

export const usage = `usage: momlab bench [--sizes small|large] [--write] | momlab bench --rule NAME|FILE

Measures the float64 reference (gated-delta steps per second, one core) and the GPU forward and
decode on the available adapter, and prints one table with date and device.
  --sizes   small (default: seconds, even on a software driver) or large (the issue's shapes: a big GPU)
  --write   append the rows to docs/perf.md (in a source checkout)
  --rule    one rule instead, built-in or a .rule file: its reference steps/s and its GPU forward in
            every mode its kernels offer, at one small shape`;

export async function run(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { flags, positional } = parseArgs(argv, { sizes: 'string', write: 'boolean', rule: 'string' }, 'bench');
  if (positional.length > 0) throw new ConfigError(`momlab bench: unexpected argument '${positional[0]}' (see momlab bench --help)`);
  if (flags.rule !== undefined) {
    if (flags.sizes !== undefined || flags.write) throw new ConfigError('momlab bench: --rule runs one small shape: it takes neither --sizes nor --write');
    const rows = await benchRule(await resolveRule(String(flags.rule), 'bench'));
    ctx.stdout.write(['| case | figure |', '|---|---|', ...rows.map((r) => `| ${r.case} | ${r.figure} |`), ''].join('\n'));
    return 0;
  }
  const sizes = flags.sizes ?? 'small';
  if (sizes !== 'small' && sizes !== 'large') throw new ConfigError(`momlab bench: --sizes must be small or large, got '${String(sizes)}'`);
  await runBench({ sizes, write: flags.write === true, command: `momlab bench${argv.length ? ` ${argv.join(' ')}` : ''}` });
  return 0;
}
