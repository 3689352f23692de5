/**
 * Input validation for the core form (docs/spec.md §4, 7). Every check throws a typed error whose
 * message names the offending argument, what was expected and what was given, so that bad
 * input never turns into a crash, a hang or a silently wrong answer.
 */
import { ConfigError, ShapeError } from './errors.js';
import { checkTopk } from './router.js';
import type { CoreConfig, CoreInputs, CoreState, Rule } from './types.js';
import { widthOf } from './types.js';

const SIZE_NAMES = ['B', 'T', 'H', 'E', 'dk', 'dv'] as const;

/** Sizes are positive integers, 1 <= topk <= E, shared is a boolean, scale (if any) finite. */
export function validateConfig(cfg: CoreConfig): void {
  if (typeof cfg !== 'object' || cfg === null) throw new ConfigError(`config must be an object, got ${String(cfg)}`);
  for (const name of SIZE_NAMES) {
    const n = cfg[name];
    if (!Number.isInteger(n) || n < 1) throw new ConfigError(`config.${name} must be a positive integer, got ${String(n)}`);
  }
  checkTopk(cfg.topk, cfg.E);
  if (typeof cfg.shared !== 'boolean') throw new ConfigError(`config.shared must be true or false, got ${String(cfg.shared)}`);
  if (cfg.scale !== undefined && !Number.isFinite(cfg.scale))
    throw new ConfigError(`config.scale must be a finite number when given, got ${String(cfg.scale)}`);
}

/** A rule must declare its inputs with distinct names and known widths. */
export function validateRule(rule: Rule): void {
  if (typeof rule !== 'object' || rule === null || typeof rule.step !== 'function' || typeof rule.read !== 'function')
    throw new ConfigError(`rule must be a Rule object with step() and read(), got ${String(rule)}`);
  const seen = new Set<string>();
  for (const d of rule.inputs) {
    if (seen.has(d.name)) throw new ConfigError(`rule '${rule.name}' declares input '${d.name}' twice`);
    seen.add(d.name);
    if (d.width !== 'dk' && d.width !== 'dv' && d.width !== 'scalar')
      throw new ConfigError(`rule '${rule.name}' input '${d.name}' has unknown width '${String(d.width)}' (expected dk, dv or scalar)`);
  }
}

/** `a` is a Float64Array of exactly `length` finite numbers; `what` names it in messages. */
export function checkArray(a: unknown, length: number, what: string, shape: string): void {
  if (!(a instanceof Float64Array))
    throw new ShapeError(`${what} must be a Float64Array ${shape}, got ${a === null || a === undefined ? String(a) : (a as object).constructor?.name ?? typeof a}`);
  if (a.length !== length) throw new ShapeError(`${what} must have length ${shape} = ${length}, got ${a.length}`);
  for (let i = 0; i < a.length; i++)
    if (!Number.isFinite(a[i])) throw new ShapeError(`${what} has a non-finite value ${a[i]} at index ${i}`);
}

/** The inputs of one memory: exactly the rule's inputs, each [B, T, H, width]. */
function checkMemoryInputs(rule: Rule, cfg: CoreConfig, mem: unknown, what: string): void {
  if (typeof mem !== 'object' || mem === null) throw new ShapeError(`${what} must be an object of the rule's inputs, got ${String(mem)}`);
  const given = Object.keys(mem);
  const expected = rule.inputs.map((d) => d.name);
  for (const name of expected)
    if (!given.includes(name))
      throw new ShapeError(`${what} is missing input '${name}' (rule '${rule.name}' takes ${expected.join(', ')})`);
  for (const name of given)
    if (!expected.includes(name))
      throw new ShapeError(`${what} has an extra input '${name}' (rule '${rule.name}' takes ${expected.join(', ')})`);
  const { B, T, H } = cfg;
  for (const d of rule.inputs) {
    const w = widthOf(d.width, cfg);
    checkArray((mem as Record<string, unknown>)[d.name], B * T * H * w, `${what}.${d.name}`, `[B, T, H, ${d.width === 'scalar' ? 1 : d.width}] = [${B}, ${T}, ${H}, ${w}]`);
  }
}

/** A state for `cfg`: routed [E, B, H, dk, dv], shared [B, H, dk, dv] iff cfg.shared. */
export function validateState(cfg: Omit<CoreConfig, 'T'>, s: CoreState, what = 'state'): void {
  if (typeof s !== 'object' || s === null) throw new ShapeError(`${what} must be { routed, shared }, got ${String(s)}`);
  const { E, B, H, dk, dv } = cfg;
  checkArray(s.routed, E * B * H * dk * dv, `${what}.routed`, `[E, B, H, dk, dv] = [${E}, ${B}, ${H}, ${dk}, ${dv}]`);
  if (cfg.shared) checkArray(s.shared, B * H * dk * dv, `${what}.shared`, `[B, H, dk, dv] = [${B}, ${H}, ${dk}, ${dv}]`);
  else if (s.shared !== null && s.shared !== undefined)
    throw new ShapeError(`${what}.shared must be null when config.shared is false, got an array of length ${(s.shared as ArrayLike<number>).length}`);
}

/**
 * Everything momForward / momGathered / MomState need to be true before they start:
 * config, rule, inputs (shapes, names, finiteness, shared iff cfg.shared) and, if given, the
 * initial state.
 */
export function validateCore(rule: Rule, cfg: CoreConfig, x: CoreInputs, initial?: CoreState): void {
  validateConfig(cfg);
  validateRule(rule);
  if (typeof x !== 'object' || x === null) throw new ShapeError(`inputs must be { q, logits, memories, shared }, got ${String(x)}`);
  const { B, T, H, E, dk } = cfg;
  checkArray(x.q, B * T * H * dk, 'inputs.q', `[B, T, H, dk] = [${B}, ${T}, ${H}, ${dk}]`);
  checkArray(x.logits, B * T * E, 'inputs.logits', `[B, T, E] = [${B}, ${T}, ${E}]`);
  if (!Array.isArray(x.memories) || x.memories.length !== E)
    throw new ShapeError(`inputs.memories must be an array of E = ${E} memories' inputs, got ${Array.isArray(x.memories) ? `${x.memories.length} entries` : String(x.memories)}`);
  x.memories.forEach((m, e) => checkMemoryInputs(rule, cfg, m, `inputs.memories[${e}]`));
  if (cfg.shared) {
    if (x.shared === null || x.shared === undefined)
      throw new ShapeError('inputs.shared is missing but config.shared is true (the shared memory needs its own inputs)');
    checkMemoryInputs(rule, cfg, x.shared, 'inputs.shared');
  } else if (x.shared !== null && x.shared !== undefined) {
    throw new ShapeError('inputs.shared must be null when config.shared is false');
  }
  if (initial !== undefined) validateState(cfg, initial, 'initial state');
}
