/**
 * For vitest (ours and users' own suites): run a property and throw a readable error when it
 * fails — the seed, the path, the shrunk case and the command that replays it.
 *
 * Replay: MOMLAB_SEED=S MOMLAB_PATH=P npx vitest run <file> -t '<property id>' runs exactly the
 * failing case again (fast-check replays the path from the seed).
 */
import { SIZES, type SizeRanges } from './arbitraries.js';
import { formatFailure, runProperty, type PropertyReport } from './runner.js';
import type { Property, PropertyEnv, RuleTarget } from './types.js';

export interface AssertOptions {
  sizes?: SizeRanges;
  numRuns?: number;
  seed?: number;
  /** safety bound on the time spent drawing cases (ms); the case count is still asserted */
  timeLimitMs?: number;
  /** the test file, for the replay command */
  file?: string;
}

/** MOMLAB_SEED / MOMLAB_PATH from the environment, when set. */
export function replayFromEnv(): { seed?: number; path?: string } {
  const seed = process.env.MOMLAB_SEED;
  const path = process.env.MOMLAB_PATH;
  return { seed: seed !== undefined && seed !== '' ? Number(seed) : undefined, path: path || undefined };
}

export async function assertProperty<C>(prop: Property<C>, targets: RuleTarget[], env: PropertyEnv, opts: AssertOptions = {}): Promise<PropertyReport> {
  const fromEnv = replayFromEnv();
  const numRuns = opts.numRuns ?? 100;
  const file = opts.file ?? '<test file>';
  const rep = await runProperty(prop, targets, env, {
    sizes: opts.sizes ?? SIZES.small,
    numRuns,
    seed: fromEnv.seed ?? opts.seed,
    path: fromEnv.path,
    timeLimitMs: opts.timeLimitMs,
    replay: (seed, path) => `MOMLAB_SEED=${seed} MOMLAB_PATH=${path} npx vitest run ${file} -t '${prop.id}'`,
  });
  if (!rep.passed) throw new Error(formatFailure(rep));
  // A replay runs one case; otherwise the time bound must not have eaten into the case count.
  if (!fromEnv.path && !rep.skipped && rep.cases < numRuns)
    throw new Error(`property '${prop.id}': only ${rep.cases} of ${numRuns} cases ran within ${opts.timeLimitMs} ms (seed ${rep.seed})`);
  return rep;
}
