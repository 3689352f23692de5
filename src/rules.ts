/**
 * One rule registry for every place a rule is named (trace, check, fuzz, vectors, bench, the
 * library): a built-in name (`gated-delta`) or the path of a rule file (`rules/titans.rule`,
 * `./mine.rule`). A rule file becomes the same kind of target as a built-in, compiled twice from its
 * text (reference JS, GPU WGSL), named `text:<rule>` so that the properties hold it to the
 * tolerances measured for compiled text rules (properties/tolerances.ts).
 */
import { gpuRuleFromChecked } from '../gpu/kernels/from-text.js';
import { getGpuRule } from '../gpu/kernels/index.js';
import { ConfigError } from '../reference/errors.js';
import { checkRuleText } from '../reference/rule-lang/check.js';
import { ruleFromChecked } from '../reference/rules/from-text.js';
import { RULE_NAMES, getRule, isRuleName } from '../reference/rules/index.js';
import { TEXT_RULE_PREFIX } from '../properties/tolerances.js';
import type { RuleTarget } from '../properties/types.js';
import { readRegular } from './io/files.js';
import { existsSync, readFileSync } from 'node:fs';

/** The largest rule file read (a rule is a few lines; a bigger file is a mistake). */
export const MAX_RULE_BYTES = 1 << 20;

/** A rule file is named by a path: it ends in `.rule` or holds a path separator. */
export const isRuleFile = (spec: string): boolean => spec.endsWith('.rule') || spec.includes('/') || spec.includes('\\');

/**
 * The text of a rule file shipped in rules/: beside src/ in a checkout, two folders up from the
 * compiled dist/src/ in an installed package.
 */
export function shippedRuleText(name: string): string {
  for (const up of ['../rules/', '../../rules/']) {
    const url = new URL(`${up}${name}.rule`, import.meta.url);
    if (existsSync(url)) return readFileSync(url, 'utf8');
  }
  throw new ConfigError(`momlab: the shipped rule file rules/${name}.rule is missing from this installation`);
}

/** A target from a rule file's text (`file` names it in diagnostics). */
export function textTarget(text: string, file: string): RuleTarget {
  const checked = checkRuleText(text, { file });
  return { name: `${TEXT_RULE_PREFIX}${checked.name}`, ref: ruleFromChecked(checked), gpu: gpuRuleFromChecked(checked) };
}

/** A built-in rule as a target: the reference, its chunked form and its GPU kernels. */
export function builtinTarget(name: string): RuleTarget {
  const ref = getRule(name);
  return { name, ref, chunked: ref, gpu: getGpuRule(name) };
}

/** A built-in name or a rule file's path, resolved to a target; anything else is refused naming both kinds. */
export async function resolveRule(spec: string, command: string): Promise<RuleTarget> {
  if (isRuleName(spec)) return builtinTarget(spec);
  if (!isRuleFile(spec))
    throw new ConfigError(`momlab ${command}: unknown rule '${spec}'; give a built-in (${RULE_NAMES.join(', ')}) or the path of a .rule file`);
  const text = (await readRegular(spec, MAX_RULE_BYTES, 'rule file')).toString('utf8');
  return textTarget(text, spec);
}
