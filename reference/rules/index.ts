/** The registry of built-in rules (docs/spec.md §3). */
import { ConfigError } from '../errors.js';
import { decay } from './decay.js';
import { delta } from './delta.js';
import { gatedDelta } from './gated-delta.js';
import { gla } from './gla.js';
import { linear } from './linear.js';
import type { BuiltinRule } from './types.js';

export const RULE_NAMES = ['linear', 'decay', 'gla', 'delta', 'gated-delta'] as const;
export type RuleName = (typeof RULE_NAMES)[number];

export const BUILTIN_RULES: Record<RuleName, BuiltinRule> = {
  linear,
  decay,
  gla,
  delta,
  'gated-delta': gatedDelta,
};

export function isRuleName(name: string): name is RuleName {
  return (RULE_NAMES as readonly string[]).includes(name);
}

/** The built-in rule called `name`; a ConfigError naming the known rules otherwise. */
export function getRule(name: string): BuiltinRule {
  if (!isRuleName(name)) throw new ConfigError(`unknown rule '${name}'; known rules: ${RULE_NAMES.join(', ')}`);
  return BUILTIN_RULES[name];
}

export type { BuiltinRule, HeadSequence } from './types.js';
export { linear, decay, gla, delta, gatedDelta };
