/** The reverse steps of the built-in rules (docs/spec.md §3), by rule name, mirroring reference/rules/index.ts. */
import { ConfigError } from '../errors.js';
import { BUILTIN_RULES, isRuleName, type RuleName } from '../rules/index.js';
import type { Rule } from '../types.js';
import type { RuleBackward } from './common.js';
import { decayBack } from './decay.js';
import { deltaBack } from './delta.js';
import { gatedDeltaBack } from './gated-delta.js';
import { glaBack } from './gla.js';
import { linearBack } from './linear.js';

export const BACKWARD_RULES: Record<RuleName, RuleBackward> = {
  linear: linearBack,
  decay: decayBack,
  gla: glaBack,
  delta: deltaBack,
  'gated-delta': gatedDeltaBack,
};

/** True for the built-in rule objects themselves (a text rule of the same name has no reference backward). */
export function hasBackward(rule: Rule): boolean {
  return isRuleName(rule.name) && BUILTIN_RULES[rule.name] === rule;
}

/** The reverse step of a built-in rule; a ConfigError for any other rule. */
export function backwardOf(rule: Rule): RuleBackward {
  if (!hasBackward(rule))
    throw new ConfigError(`rule '${rule.name}' has no reference backward (only the built-in rules do: ${Object.keys(BACKWARD_RULES).join(', ')})`);
  return BACKWARD_RULES[rule.name as RuleName];
}
