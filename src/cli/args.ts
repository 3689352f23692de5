/**
 * Strict argument parsing on Node's util.parseArgs: an unknown flag, a flag missing its value
 * (`--out --batch 1`), an empty number (`--seed=`), a flag given twice and a stray positional are
 * errors that name the flag. Booleans take `--no-NAME`.
 */
import { parseArgs as nodeParseArgs } from 'node:util';
import { ConfigError } from '../../reference/errors.js';

export interface FlagSpec {
  [flag: string]: 'string' | 'number' | 'boolean';
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** Node's parse errors in momlab's words, naming the flag or argument. */
function explain(e: Error & { code?: string }): string {
  const msg = e.message.split('\n')[0];
  const quoted = /'(-[^' <]+)/.exec(msg)?.[1] ?? /'([^']*)'/.exec(msg)?.[1] ?? '';
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${quoted}`;
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return `unexpected argument '${quoted}'`;
  if (/does not take an argument/.test(msg)) return `option ${quoted} takes no value`;
  if (/ambiguous/.test(msg)) return `option ${quoted} needs a value (the argument after it is an option; write ${quoted}=VALUE for a value starting with '-')`;
  if (/argument missing/.test(msg)) return `option ${quoted} needs a value`;
  return msg;
}

/** `positionals`: how many positional arguments the command takes (default none). */
export function parseArgs(argv: string[], spec: FlagSpec, command: string, positionals = 0): { flags: Record<string, string | number | boolean>; positional: string[] } {
  const options = Object.fromEntries(Object.entries(spec).map(([name, kind]) => [name, { type: kind === 'boolean' ? ('boolean' as const) : ('string' as const) }]));
  let parsed: ReturnType<typeof nodeParseArgs<{ options: typeof options; tokens: true; allowPositionals: true; allowNegative: true; strict: true }>>;
  try {
    parsed = nodeParseArgs({ args: argv, options, strict: true, allowPositionals: positionals > 0, allowNegative: true, tokens: true });
  } catch (e) {
    throw new ConfigError(`momlab ${command}: ${explain(e as Error & { code?: string })}`);
  }
  const seen = new Set<string>();
  for (const t of parsed.tokens) {
    if (t.kind !== 'option') continue;
    if (seen.has(t.name)) throw new ConfigError(`momlab ${command}: option --${t.name} is given twice`);
    seen.add(t.name);
  }
  if (parsed.positionals.length > positionals) throw new ConfigError(`momlab ${command}: unexpected argument '${parsed.positionals[positionals]}'`);
  const flags: Record<string, string | number | boolean> = {};
  for (const [name, value] of Object.entries(parsed.values)) {
    if (value === undefined) continue;
    if (spec[name] === 'number') {
      if (typeof value !== 'string' || !NUMBER.test(value.trim())) throw new ConfigError(`momlab ${command}: option --${name} needs a number, got '${String(value)}'`);
      flags[name] = Number(value);
    } else flags[name] = value as string | boolean;
  }
  return { flags, positional: parsed.positionals };
}

/** A fast-check seed (a 32-bit integer) from --seed, or a random non-negative one (it prints as a plain --seed N). */
export function seedFlag(value: unknown, command: string): number {
  if (value === undefined) return (Math.random() * 2 ** 31) | 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 31) throw new ConfigError(`momlab ${command}: --seed must be an integer in -2^31..2^31-1, got ${String(value)}`);
  return value;
}
