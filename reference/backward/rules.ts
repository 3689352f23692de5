/** The reverse steps of the built-in rules (docs/spec.md §3), by rule name, mirroring reference/rules/index.ts; rules written as math bring their own. */
import { ConfigError } from '../errors.js';
import { BUILTIN_RULES, isRuleName, type RuleName } from '../rules/index.js';
import type { TextRule } from '../rules/from-text.js';
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

/** A rule written as math carries the backward derived from its program (reference/rule-lang/grad.ts). */
function derivedOf(rule: Rule): RuleBackward | null {
  return 'backward' in rule ? (rule as TextRule).backward : null;
}

/** True for the built-in rule objects themselves and for rules written as math. */
export function hasBackward(rule: Rule): boolean {
  return (isRuleName(rule.name) && BUILTIN_RULES[rule.name] === rule) || derivedOf(rule) !== null;
}

/** The reverse step of a built-in rule (hand-written) or a rule written as math (derived); a ConfigError for any other rule. */
export function backwardOf(rule: Rule): RuleBackward {
  const derived = derivedOf(rule);
  if (derived) return derived;
  if (!hasBackward(rule))
    throw new ConfigError(`rule '${rule.name}' has no reference backward (only the built-in rules (${Object.keys(BACKWARD_RULES).join(', ')}) and rules written as math do)`);
  return BACKWARD_RULES[rule.name as RuleName];
}
