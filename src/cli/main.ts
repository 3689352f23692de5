/**
 * The momlab command line. Each command lives in src/cli/<command>.ts and exports
 * `run(argv, ctx): Promise<number>` (the exit code) and `usage: string`.
 * Exit codes: 0 success, 1 a check failed, 2 bad input (one line naming the problem),
 * 3 an internal error (the stack only with --debug). docs/refusals.md lists what is refused.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MomlabError } from '../../reference/errors.js';
import { DEFAULT_MAX_MEMORY, parseSize, type CliContext, type Sink } from './context.js';

interface Command {
  run(argv: string[], ctx: CliContext): Promise<number>;
  usage: string;
}

// Literal specifiers, so that the table works under tsx and once compiled to JavaScript.
const COMMANDS: Record<string, { about: string; load: () => Promise<Command> }> = {
  start: { about: 'the main job: a short trace, then the checks', load: () => import('./start.js') },
  trace: { about: 'run one sequence through the reference and show it step by step', load: () => import('./trace.js') },
  learn: { about: "a local page that walks through the model token by token and checks the browser's GPU", load: () => import('./learn.js') },
  check: { about: 'run the property suite against the available GPU', load: () => import('./check.js') },
  fuzz: { about: 'run the property suite on a rule written as math (a .rule file)', load: () => import('./fuzz.js') },
  report: { about: 'merge the --json reports of the shards of a check or fuzz campaign', load: () => import('./report.js') },
  init: { about: 'create random layer weights (safetensors) with fla initialisation', load: () => import('./init.js') },
  vectors: { about: 'write golden test vectors for another implementation', load: () => import('./vectors.js') },
  verify: { about: "compare another implementation's outputs with golden vectors", load: () => import('./verify.js') },
  bench: { about: 'measure speed (reference and GPU)', load: () => import('./bench.js') },
};

const EXIT = { ok: 0, failed: 1, badInput: 2, internal: 3 } as const;

function help(): string {
  const lines = Object.entries(COMMANDS).map(([c, d]) => `  ${c.padEnd(9)} ${d.about}`);
  return [
    'usage: momlab <command> [options] [--max-memory SIZE] [--debug]',
    '',
    'commands:',
    ...lines,
    '',
    "'momlab <command> --help' shows a command's options.",
    `--max-memory SIZE  the most a request may allocate (default ${DEFAULT_MAX_MEMORY / 2 ** 30} GiB; e.g. 8GiB, 512MiB)`,
    '--debug            print the stack of an internal error',
  ].join('\n');
}

/** Take the global options (--debug, --max-memory) out of argv, wherever they are. */
function globals(argv: string[]): { rest: string[]; debug: boolean; maxMemory: number } {
  const rest: string[] = [];
  let debug = false;
  let maxMemory = DEFAULT_MAX_MEMORY;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--debug') debug = true;
    else if (a === '--max-memory') maxMemory = parseSize(argv[++i] ?? '');
    else if (a.startsWith('--max-memory=')) maxMemory = parseSize(a.slice('--max-memory='.length));
    else rest.push(a);
  }
  return { rest, debug, maxMemory };
}

/** Node's errors from the file system (EACCES, ENOENT, EISDIR, ENOSPC, ...) are about the user's paths. */
const isSystemError = (e: unknown): e is NodeJS.ErrnoException => e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && /^E[A-Z]+$/.test((e as NodeJS.ErrnoException).code!);

/** The whole command line in this process: returns the exit code, never throws. */
export async function runCli(argv: string[], io: { stdout: Sink; stderr: Sink } = process): Promise<number> {
  const say = (s: string) => io.stderr.write(s + '\n');
  let debug = argv.includes('--debug');
  let cmd: string | undefined;
  // Messages of momlab's own checks start 'momlab <command>:'; others (a file's) get that prefix here.
  const prefixed = (msg: string) => (msg.startsWith('momlab') ? msg : `momlab${cmd ? ` ${cmd}` : ''}: ${msg}`);
  try {
    const g = globals(argv);
    debug = g.debug;
    const [first, ...rest] = g.rest;
    cmd = first;
    if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      io.stdout.write(help() + '\n');
      return cmd ? EXIT.ok : EXIT.badInput;
    }
    const entry = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
    if (!entry) {
      say(`momlab: unknown command '${cmd}' (commands: ${Object.keys(COMMANDS).join(', ')})`);
      return EXIT.badInput;
    }
    const mod = await entry.load();
    if (rest.includes('--help') || rest.includes('-h')) {
      io.stdout.write(mod.usage + '\n');
      return EXIT.ok;
    }
    return await mod.run(rest, { stdout: io.stdout, stderr: io.stderr, maxMemory: g.maxMemory });
  } catch (e) {
    if (e instanceof MomlabError || isSystemError(e)) {
      say(prefixed(e.message));
      return EXIT.badInput;
    }
    say(`${prefixed('internal error')}: ${e instanceof Error ? e.message : String(e)}${debug ? '' : ' (run with --debug for the stack)'}`);
    if (debug && e instanceof Error && e.stack) say(e.stack);
    return EXIT.internal;
  }
}

const real = (p: string): string | null => {
  try {
    return realpathSync(p);
  } catch {
    return null;
  }
};

/**
 * Exit once everything written to stdout and stderr has left the process: writes to a pipe are
 * asynchronous, and process.exit() drops what is still queued (a long --json report read through
 * a pipe would end mid-line). A write's callback runs after every write queued before it.
 */
export function exitAfterOutput(code: number): void {
  let open = 2;
  const drained = () => {
    if (--open === 0) process.exit(code);
  };
  process.stdout.write('', drained);
  process.stderr.write('', drained);
}

// Run when executed (tsx src/cli/main.ts, node dist/.../main.js), not when imported by a test.
if (process.argv[1] && real(process.argv[1]) === real(fileURLToPath(import.meta.url))) {
  runCli(process.argv.slice(2)).then(exitAfterOutput);
}
