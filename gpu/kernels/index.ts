/** The registry of built-in GPU rules, by the same names as reference/rules/index.ts. */
import { ConfigError } from '../../reference/errors.js';
import { RULE_NAMES, type RuleName } from '../../reference/rules/index.js';
import { decay } from './decay.js';
import { delta } from './delta.js';
import { gatedDelta } from './gated-delta.js';
import { gla } from './gla.js';
import { linear } from './linear.js';
import type { GpuRule } from './types.js';

export const GPU_RULES: Record<RuleName, GpuRule> = {
  linear,
  decay,
  gla,
  delta,
  'gated-delta': gatedDelta,
};

/** The built-in GPU rule called `name`; a ConfigError naming the known rules otherwise. */
export function getGpuRule(name: string): GpuRule {
  if (!(RULE_NAMES as readonly string[]).includes(name)) {
    throw new ConfigError(`unknown rule '${name}'; known rules: ${RULE_NAMES.join(', ')}`);
  }
  return GPU_RULES[name as RuleName];
}

export { linear, decay, gla, delta, gatedDelta };
