/** A small, strict argument parser: unknown flags and missing values are errors that name the flag. */
import { ConfigError } from '../../reference/errors.js';

export interface FlagSpec {
  [flag: string]: 'string' | 'number' | 'boolean';
}

export function parseArgs(argv: string[], spec: FlagSpec, command: string): { flags: Record<string, string | number | boolean>; positional: string[] } {
  const flags: Record<string, string | number | boolean> = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    let [name, value] = a.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const neg = name.startsWith('no-') && spec[name] === undefined && spec[name.slice(3)] === 'boolean';
    if (neg) name = name.slice(3);
    const kind = spec[name];
    if (!kind) throw new ConfigError(`momlab ${command}: unknown option --${name}`);
    if (kind === 'boolean') {
      flags[name] = !neg;
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new ConfigError(`momlab ${command}: option --${name} needs a value`);
    }
    if (kind === 'number') {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new ConfigError(`momlab ${command}: option --${name} needs a number, got '${value}'`);
      flags[name] = n;
    } else flags[name] = value;
  }
  return { flags, positional };
}
