/**
 * The line-based structure of a rule file (docs/rule-language.md). One declaration per line,
 * `#` starts a comment:
 *
 *   state S[dk, dv]                  the memory state; its shape must be [dk, dv]
 *   inputs k[dk], v[dv], g, beta     per-token inputs in order; vectors [dk] or [dv], scalars bare
 *   range g <= 0                     generator ranges: `x in (a, b)` with literal bounds ( or [,
 *   range beta in (0, 1)             ) or ], one-sided `x <= a` `< a` `>= a` `> a`, `x normalized`
 *   range k normalized               (unit l2 norm), `x free` (the default); one range per input
 *   let u = <expr>                   a named temporary (any shape), visible to later lines
 *   update S = <expr>                a new value of the state; later lines see the new value
 *   output o = <expr>                the read-out, a [dv] column; sees the final state and q[dk]
 *
 * Statements run in order; the output line comes last. This file checks the structure only;
 * names and shapes inside expressions are checked by check.ts.
 */
import type { InputRange, Interval, Width } from '../types.js';
import { F32_MAX } from './emit.js';
import { parseExpr, type Expr } from './expr.js';
import { RuleError } from '../errors.js';
import { makeSource, ruleError, type Source, type Span } from './source.js';

export type DimName = 'dk' | 'dv';

export interface InputSpec {
  name: string;
  width: Width;
  span: Span;
}

export interface Statement {
  kind: 'let' | 'update';
  name: string;
  nameSpan: Span;
  expr: Expr;
  line: number;
}

export interface RuleFile {
  src: Source;
  state: { name: string; span: Span };
  inputs: InputSpec[];
  ranges: Map<string, { range: InputRange; span: Span }>;
  body: Statement[];
  output: { name: string; nameSpan: Span; expr: Expr; line: number };
}

/** The name `q` is the query, always present: rule inputs may not take it. */
export const QUERY = 'q';
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const KEYWORDS = ['state', 'inputs', 'range', 'let', 'update', 'output'];

/** Parse the structure of a rule file. Throws RuleError quoting the offending text (every error of the file). */
export function parseRuleFile(text: string, file = '<rule>'): RuleFile {
  const { rule, errors } = parseRuleFileAll(text, file);
  if (errors.length) throw combineErrors(errors);
  return rule;
}

/** Several RuleErrors as one, in line order; each keeps its quoted line and carets. */
export function combineErrors(errors: readonly RuleError[]): RuleError {
  if (errors.length === 1) return errors[0];
  const sorted = [...errors].sort((a, b) => lineOf(a) - lineOf(b));
  return new RuleError(`${sorted.map((e) => e.message).join('\n')}\n${errors.length} errors`);
}
const lineOf = (e: RuleError) => Number(/^[^\n]*?:(\d+):\d+: /.exec(e.message)?.[1] ?? 0);

/**
 * Parse as much as possible: every line is parsed even after an error. Unless `fatal` (no usable
 * state or inputs line), `rule` can go to the checker, which skips what failed here: `broken`
 * names the `let` lines that failed (their uses are not reported again), and `rule.output` is
 * undefined when the output line is missing or failed.
 */
export function parseRuleFileAll(text: string, file = '<rule>'): { rule: RuleFile; errors: RuleError[]; broken: Set<string>; fatal: boolean } {
  const errors: RuleError[] = [];
  const broken = new Set<string>();
  let updateFailed = false;
  let outputFailed = false;
  let fatal = false;
  const src = makeSource(text, file);
  let state: RuleFile['state'] | null = null;
  let inputs: InputSpec[] | null = null;
  const ranges: RuleFile['ranges'] = new Map();
  const body: Statement[] = [];
  let output: RuleFile['output'] | null = null;
  const pendingRanges: { name: string; range: InputRange; span: Span }[] = [];

  src.lines.forEach((raw, idx) => {
    try {
      parseLine(raw, idx);
    } catch (e) {
      if (!(e instanceof RuleError)) throw e;
      errors.push(e);
      const m = /^\s*(let|update|inputs|state)\b\s*([A-Za-z_]\w*)?/.exec(raw);
      if (m?.[1] === 'let' && m[2]) broken.add(m[2]);
      if (m?.[1] === 'update') updateFailed = true;
      if (/^\s*output\b/.test(raw)) outputFailed = true;
      if (m?.[1] === 'inputs' || m?.[1] === 'state') fatal = true;
    }
  });

  function parseLine(raw: string, idx: number): void {
    const line = idx + 1;
    const hash = raw.indexOf('#');
    const content = hash >= 0 ? raw.slice(0, hash) : raw;
    const start = content.search(/\S/);
    if (start < 0) return;
    const body0 = content.trimEnd();
    const kw = /^[A-Za-z_]+/.exec(body0.slice(start))?.[0] ?? '';
    const kwSpan: Span = { line, col: start + 1, len: Math.max(1, kw.length) };
    const restCol = start + kw.length; // 0-based index of what follows the keyword
    const rest = body0.slice(restCol);
    const at = (offset: number, len: number): Span => ({ line, col: restCol + offset + 1, len: Math.max(1, len) });
    const whole: Span = { line, col: start + 1, len: body0.length - start };

    if (output && kw !== 'range') {
      throw ruleError(src, whole, `'${kw}' after the output line: the read-out reads the state after all updates, so the output line must come last`);
    }
    switch (kw) {
      case 'state': {
        if (state) throw ruleError(src, whole, `a second state declaration (the state was declared on line ${state.span.line})`);
        const m = /^\s+([A-Za-z_]\w*)\s*\[\s*([^,\]]*?)\s*,\s*([^\]]*?)\s*\]\s*$/.exec(rest);
        if (!m) throw ruleError(src, whole, 'expected `state S[dk, dv]`');
        const nameAt = rest.indexOf(m[1]);
        if (m[2] !== 'dk' || m[3] !== 'dv') {
          throw ruleError(src, at(rest.indexOf('['), rest.length - rest.indexOf('[')), `the state must have shape [dk, dv] (a dk×dv matrix read out as Sᵀq), got [${m[2]}, ${m[3]}]`);
        }
        checkName(src, m[1], at(nameAt, m[1].length));
        state = { name: m[1], span: at(nameAt, m[1].length) };
        return;
      }
      case 'inputs': {
        if (inputs) throw ruleError(src, whole, 'a second inputs line: declare all inputs on one line, in order');
        inputs = [];
        let offset = 0;
        for (const piece of rest.split(',')) {
          const lead = piece.search(/\S/);
          const item = piece.trim();
          const span = at(offset + Math.max(0, lead), Math.max(1, item.length));
          offset += piece.length + 1;
          const m = /^([A-Za-z_]\w*)\s*(?:\[\s*([^\]]*?)\s*\])?$/.exec(item);
          if (!m) throw ruleError(src, span, `expected an input like 'k[dk]', 'v[dv]' or a scalar 'g', got '${item}'`);
          const name = m[1];
          checkName(src, name, span);
          if (name in Object.prototype) throw ruleError(src, span, `'${name}' cannot be an input name: momlab keeps inputs in JavaScript objects, where '${name}' is a built-in property`);
          if (name === QUERY) throw ruleError(src, span, `'q' is the query, implicit in every rule (q[dk], used by the output line); it cannot be an input`);
          if (inputs.some((i) => i.name === name)) throw ruleError(src, span, `input '${name}' is declared twice`);
          let width: Width = 'scalar';
          if (m[2] !== undefined) {
            if (m[2] !== 'dk' && m[2] !== 'dv') throw ruleError(src, span, `input '${name}' has width [${m[2]}]; inputs are [dk] or [dv] vectors, or scalars (no brackets)`);
            width = m[2];
          }
          inputs.push({ name, width, span });
        }
        return;
      }
      case 'range': {
        const m = /^\s+([A-Za-z_]\w*)\s+(.*?)\s*$/.exec(rest);
        if (!m) throw ruleError(src, whole, 'expected `range x <= 0`, `range x in (0, 1)`, `range x normalized` or `range x free`');
        const nameSpan = at(rest.indexOf(m[1]), m[1].length);
        const condSpan = at(rest.lastIndexOf(m[2]), m[2].length);
        pendingRanges.push({ name: m[1], range: parseRange(src, m[2], condSpan), span: nameSpan });
        return;
      }
      case 'let':
      case 'update':
      case 'output': {
        const m = /^(\s+)([A-Za-z_]\w*)(\s*)=(?!=)(.*)$/.exec(rest);
        if (!m) throw ruleError(src, whole, `expected \`${kw} name = expression\``);
        const nameSpan = at(m[1].length, m[2].length);
        checkName(src, m[2], nameSpan);
        const exprCol = restCol + m[1].length + m[2].length + m[3].length + 1 + 1; // 1-based column after '='
        const expr = parseExpr(src, line, m[4], exprCol);
        if (kw === 'output') output = { name: m[2], nameSpan, expr, line };
        else body.push({ kind: kw, name: m[2], nameSpan, expr, line });
        return;
      }
      default:
        throw ruleError(src, kwSpan, `unknown declaration '${kw || body0.trim()}'; a line starts with one of: ${KEYWORDS.join(', ')} (or # for a comment)`);
    }
  }

  const endSpan: Span = { line: src.lines.length, col: 1, len: 1 };
  const missing = (message: string) => errors.push(ruleError(src, endSpan, message));
  if (!state && !fatal) missing('no state declaration: a rule needs `state S[dk, dv]`');
  if (!inputs && !fatal) missing('no inputs line: a rule needs e.g. `inputs k[dk], v[dv]`');
  fatal ||= !state || !inputs;
  if (!output && !outputFailed) missing('no output line: a rule needs e.g. `output o = S\' * q`');
  const st = (state ?? { name: '', span: endSpan }) as RuleFile['state'];
  const ins = (inputs ?? []) as InputSpec[];
  const clash = ins.find((i) => i.name === st.name);
  if (clash) errors.push(ruleError(src, clash.span, `input '${clash.name}' has the name of the state`));
  for (const r of pendingRanges) {
    const input = ins.find((i) => i.name === r.name);
    if (!input) errors.push(ruleError(src, r.span, `range for '${r.name}', which is not an input (inputs: ${ins.map((i) => i.name).join(', ')})`));
    else if (ranges.has(r.name)) errors.push(ruleError(src, r.span, `a second range for '${r.name}' (first on line ${ranges.get(r.name)!.span.line})`));
    else if (r.range === 'normalized' && input.width === 'scalar') errors.push(ruleError(src, r.span, `'${r.name}' is a scalar: only vectors can be normalized`));
    else ranges.set(r.name, { range: r.range, span: r.span });
  }
  if (state && !updateFailed && !body.some((s) => s.kind === 'update' && s.name === st.name)) {
    errors.push(ruleError(src, st.span, `the state '${st.name}' is never updated: add a line \`update ${st.name} = ...\``));
  }
  return { rule: { src, state: st, inputs: ins, ranges, body, output: output as unknown as RuleFile['output'] }, errors, broken, fatal };
}

const BOUND = String.raw`\s*(-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*`;
const BETWEEN = new RegExp(String.raw`^in\s*([(\[])${BOUND},${BOUND}([)\]])$`);
const ONE_SIDED = new RegExp(String.raw`^(<=|<|>=|>)${BOUND}$`);

/**
 * A range condition: `free`, `normalized`, `in (a, b)` with `(`/`[` and `)`/`]` for open/closed
 * ends, or `<= a`, `< a`, `>= a`, `> a`. `<= 0` and `< 0` are the built-ins' log-space decay and
 * `in (0, 1)` their unit interval, which generators draw as the built-ins' inputs.
 */
function parseRange(src: Source, cond: string, span: Span): InputRange {
  if (cond === 'free' || cond === 'normalized') return cond;
  const between = BETWEEN.exec(cond);
  const side = ONE_SIDED.exec(cond);
  if (!between && !side) {
    throw ruleError(src, span, `unknown range '${cond}'; ranges are 'free', 'normalized' (unit l2 norm), 'in (a, b)' (with ( or [ and ) or ] for open or closed ends), '<= a', '< a', '>= a' and '> a', with number literals a, b`);
  }
  const bounds = (between ? [between[2], between[3]] : [side![2]]).map(Number);
  if (bounds.some((b) => !(Math.abs(b) <= F32_MAX))) throw ruleError(src, span, `a bound of '${cond}' is beyond the float32 range (largest ${F32_MAX})`);
  let r: Interval;
  if (between) r = { lo: bounds[0], hi: bounds[1], loOpen: between[1] === '(', hiOpen: between[4] === ')' };
  else {
    const op = side![1];
    r = op.startsWith('<') ? { lo: -Infinity, hi: bounds[0], loOpen: true, hiOpen: op === '<' } : { lo: bounds[0], hi: Infinity, loOpen: op === '>', hiOpen: true };
  }
  if (!(r.lo < r.hi || (r.lo === r.hi && !r.loOpen && !r.hiOpen))) throw ruleError(src, span, `the range '${cond}' holds no value`);
  if (r.lo === -Infinity && r.hi === 0) return 'logdecay';
  if (r.lo === 0 && r.hi === 1 && r.loOpen && r.hiOpen) return 'unit';
  return r;
}

function checkName(src: Source, name: string, span: Span): void {
  if (!NAME.test(name)) throw ruleError(src, span, `'${name}' is not a valid name`);
  if (KEYWORDS.includes(name)) throw ruleError(src, span, `'${name}' is a keyword of the rule language and cannot be a name`);
}
