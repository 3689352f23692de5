/**
 * The momlab command line. Each command lives in src/cli/<command>.ts and exports
 * `run(argv: string[]): Promise<number>` (the exit code) and `usage: string`.
 */
import { MomlabError } from '../../reference/errors.js';

const COMMANDS: Record<string, string> = {
  start: 'the main job: a short trace, then the checks',
  trace: 'run one sequence through the reference and show it step by step',
  check: 'run the property suite against the available GPU',
  fuzz: 'run the property suite on a rule written as math (a .rule file)',
  init: 'create random layer weights (safetensors) with fla initialisation',
  vectors: 'write golden test vectors for another implementation',
  verify: "compare another implementation's outputs with golden vectors",
  bench: 'measure speed (reference and GPU)',
};

function help(): string {
  const lines = Object.entries(COMMANDS).map(([c, d]) => `  ${c.padEnd(9)} ${d}`);
  return `usage: momlab <command> [options]\n\ncommands:\n${lines.join('\n')}\n\n'momlab <command> --help' shows a command's options.`;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(help());
    return cmd ? 0 : 2;
  }
  if (!(cmd in COMMANDS)) {
    console.error(`momlab: unknown command '${cmd}'\n\n${help()}`);
    return 2;
  }
  const mod = (await import(`./${cmd}.ts`)) as { run(argv: string[]): Promise<number>; usage: string };
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(mod.usage);
    return 0;
  }
  return mod.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof MomlabError) {
      console.error(`momlab: ${e.name}: ${e.message}`);
      process.exit(2);
    }
    console.error(e);
    process.exit(1);
  },
);
