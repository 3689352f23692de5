/**
 * Positions in a rule text and the error messages that quote them. Every diagnostic of the rule
 * language (syntax, unknown symbol, shape, unsupported function, non-linear read-out) points at
 * the offending part of the text: `file:line:col: message`, the line itself, and a caret line.
 */
import { RuleError } from '../errors.js';

/** A range on one line of the source: 1-based line and column, length in characters (>= 1). */
export interface Span {
  line: number;
  col: number;
  len: number;
}

export interface Source {
  /** shown in messages, e.g. `rules/gated-delta.rule` */
  file: string;
  text: string;
  lines: string[];
}

export function makeSource(text: string, file = '<rule>'): Source {
  return { file, text, lines: text.split(/\r?\n/) };
}

/** The span covering both a and b (both on one line: expressions never span lines). */
export function joinSpans(a: Span, b: Span): Span {
  const col = Math.min(a.col, b.col);
  const end = Math.max(a.col + a.len, b.col + b.len);
  return { line: a.line, col, len: end - col };
}

/** `file:line:col: message` followed by the quoted line and a caret line under the span. */
export function formatDiagnostic(src: Source, span: Span, message: string): string {
  const text = src.lines[span.line - 1] ?? '';
  const gutter = `${span.line} | `;
  const carets = ' '.repeat(gutter.length + span.col - 1) + '^'.repeat(Math.max(1, span.len));
  return `${src.file}:${span.line}:${span.col}: ${message}\n${gutter}${text}\n${carets}`;
}

/** A RuleError whose message quotes `span`; `what` is the quoted text, named in the message. */
export function ruleError(src: Source, span: Span, message: string): RuleError {
  return new RuleError(formatDiagnostic(src, span, message));
}

/** The source text under a span. */
export function textOf(src: Source, span: Span): string {
  return (src.lines[span.line - 1] ?? '').slice(span.col - 1, span.col - 1 + span.len);
}
