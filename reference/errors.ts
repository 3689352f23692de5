/**
 * Typed errors. Every bad input is reported with one of these, with a message that names the
 * problem (which argument, what was expected, what was given), never a crash or a wrong answer.
 */
export class MomlabError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A configuration that cannot be run: k outside 1..E, non-positive sizes, unknown rule. */
export class ConfigError extends MomlabError {}

/** An input of the wrong shape or length, or with non-finite values. */
export class ShapeError extends MomlabError {}

/** A rule text that does not parse, has inconsistent shapes, or names an unknown symbol. */
export class RuleError extends MomlabError {}

/** A file (weights, vectors) that is missing, truncated, corrupt or does not match the config. */
export class FormatError extends MomlabError {}

/** No adapter, a lost device, a validation error, or a problem over a device limit. */
export class GpuError extends MomlabError {}
