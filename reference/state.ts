/**
 * docs/spec.md §7 (core part), the inference state: the E routed states and the shared state of every
 * (sequence, head). Its size is fixed when it is created and does not grow with the tokens
 * seen; prefill (any number of times, any lengths) and step advance it in place.
 */
import { ConfigError } from './errors.js';
import { advanceDirect, copyState, emptyState } from './mom.js';
import type { CoreConfig, CoreInputs, CoreState, Rule } from './types.js';
import { validateConfig, validateCore, validateRule, validateState } from './validate.js';

export class MomState {
  readonly rule: Rule;
  readonly cfg: Omit<CoreConfig, 'T'>;
  /** 8 bytes per float64 · (E + shared) memories · B · H · dk · dv */
  readonly byteSize: number;
  private readonly state: CoreState;
  private seen = 0;

  constructor(rule: Rule, cfg: Omit<CoreConfig, 'T'>, initial?: CoreState) {
    validateConfig({ ...cfg, T: 1 });
    validateRule(rule);
    if (initial !== undefined) validateState(cfg, initial, 'initial state');
    this.rule = rule;
    this.cfg = { ...cfg };
    this.state = initial ? copyState(initial) : emptyState(cfg);
    const { E, B, H, dk, dv, shared } = cfg;
    this.byteSize = 8 * (E + (shared ? 1 : 0)) * B * H * dk * dv;
  }

  /** Tokens fed (per sequence) through prefill and step since construction. */
  get tokensSeen(): number {
    return this.seen;
  }

  /** Feed T more tokens (x has shapes for T); returns their outputs o [B, T, H, dv]. */
  prefill(x: CoreInputs, T: number): Float64Array {
    if (!Number.isInteger(T) || T < 1) throw new ConfigError(`prefill needs a positive integer number of tokens T, got ${String(T)}`);
    const cfg: CoreConfig = { ...this.cfg, T };
    validateCore(this.rule, cfg, x);
    const o = advanceDirect(this.rule, cfg, x, this.state, 'after');
    this.seen += T;
    return o;
  }

  /** One token (x has shapes for T = 1); returns o [B, 1, H, dv]. */
  step(x: CoreInputs): Float64Array {
    return this.prefill(x, 1);
  }

  /** A deep copy of the current state. */
  snapshot(): CoreState {
    return copyState(this.state);
  }

  /** Overwrite the state with `s` (copied; it must have this state's size). */
  restore(s: CoreState): void {
    validateState(this.cfg, s, 'restored state');
    this.state.routed.set(s.routed);
    if (this.state.shared && s.shared) this.state.shared.set(s.shared);
  }
}
