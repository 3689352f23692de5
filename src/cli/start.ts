/**
 * `momlab start` (`npm start`): the main job in one go — a three-token trace, to see what MoM
 * does to one sequence, then `check` on every rule and the fla-compatible layer (the `layer`
 * pseudo-rule of --rules all) at small sizes, to see that the GPU agrees with the reference. Exits with check's code (0 only if every property holds).
 */
import * as check from './check.js';
import { parseArgs, seedFlag } from './args.js';
import { ConfigError } from '../../reference/errors.js';
import { processContext, type CliContext } from './context.js';
import * as trace from './trace.js';

// 40 cases per property and rule: the whole start (trace included) measured 22 s on lavapipe
// at a load of ~2.6 (51 s for 20 cases under a load of ~7); with the layer's three properties
// added (65 pairs; gpu-layer 4-17 s of it), 84 s at a load of ~3-4 (seed 1), 42 s at ~2 (seed 2).
// `momlab check` runs 100 by default.
const START_RUNS = 40;

export const usage = `usage: momlab start [--runs N] [--seed S]

A three-token trace (momlab trace --tokens 3), then the property suite on every rule and on the
fla-compatible layer at small sizes (momlab check --rules all --sizes small --runs ${START_RUNS}).

options:
  --runs N    cases per property and rule for the checks (default ${START_RUNS})
  --seed S    fast-check seed for the checks (default: random, printed)`;

export async function run(argv: string[], ctx: CliContext = processContext()): Promise<number> {
  const { flags } = parseArgs(argv, { runs: 'number', seed: 'number' }, 'start');
  const runs = flags.runs ?? START_RUNS;
  if (!(Number.isInteger(runs) && (runs as number) >= 1)) throw new ConfigError(`momlab start: --runs must be a positive integer, got ${runs}`);
  const seed = seedFlag(flags.seed, 'start');
  ctx.stdout.write('== momlab trace --tokens 3: one sequence through the reference, token by token ==\n\n');
  const traced = await trace.run(['--tokens', '3'], ctx);
  if (traced !== 0) return traced;
  ctx.stdout.write('\n== momlab check --rules all --sizes small: the properties, reference and GPU ==\n\n');
  const args = ['--rules', 'all', '--sizes', 'small', '--runs', String(runs), `--seed=${seed}`];
  return check.run(args, ctx);
}
