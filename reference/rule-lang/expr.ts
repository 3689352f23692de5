/**
 * The expression syntax of rule files: the subset of mathjs syntax that rules need, parsed here
 * (rather than by mathjs.parse) so that every node keeps its line and column for diagnostics.
 * Precedence and associativity follow mathjs, so an expression means the same in mathjs:
 *
 *   expr    := term (('+' | '-') term)*
 *   term    := unary (('*' | '/' | '.*' | './') unary)*        matrix product, scalar division, elementwise
 *   unary   := ('-' | '+') unary | power
 *   power   := postfix (('^' | '.^') unary)?                   right-associative, as in mathjs
 *   postfix := primary "'"*                                     transpose (mathjs: conjugate transpose)
 *   primary := number | name | name '(' expr (',' expr)* ')' | '(' expr ')'
 *
 * Implicit multiplication (mathjs's `2 S`) is refused with a message asking for `*`: in rules
 * it is more often a typo than an intention.
 *
 * Depth is bounded so that no input can exhaust the JavaScript stack (here, in the checker or in
 * the code generators): at most MAX_NESTING nested parentheses, calls, signs and powers, and an
 * expression tree at most MAX_DEPTH operators deep (a long sum is a deep tree).
 */
import { joinSpans, ruleError, type Source, type Span } from './source.js';

export type BinaryOp = '+' | '-' | '*' | '/' | '.*' | './' | '^' | '.^';

export type Expr =
  | { kind: 'num'; value: number; span: Span }
  | { kind: 'sym'; name: string; span: Span }
  | { kind: 'neg'; arg: Expr; span: Span }
  | { kind: 'binary'; op: BinaryOp; left: Expr; right: Expr; span: Span }
  | { kind: 'transpose'; arg: Expr; span: Span }
  | { kind: 'call'; fn: string; fnSpan: Span; args: Expr[]; span: Span };

type Tok =
  | { t: 'num'; value: number; span: Span }
  | { t: 'name'; name: string; span: Span }
  | { t: 'op'; op: string; span: Span }
  | { t: 'end'; span: Span };

export const MAX_NESTING = 100;
export const MAX_DEPTH = 1000;

const OPS = ['.*', './', '.^', '+', '-', '*', '/', '^', "'", '(', ')', ','];

function lex(src: Source, line: number, text: string, col0: number): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    const col = col0 + i;
    const num = /^(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/.exec(text.slice(i));
    if (num) {
      toks.push({ t: 'num', value: Number(num[0]), span: { line, col, len: num[0].length } });
      i += num[0].length;
      continue;
    }
    const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i));
    if (name) {
      toks.push({ t: 'name', name: name[0], span: { line, col, len: name[0].length } });
      i += name[0].length;
      continue;
    }
    const op = OPS.find((o) => text.startsWith(o, i));
    if (op) {
      toks.push({ t: 'op', op, span: { line, col, len: op.length } });
      i += op.length;
      continue;
    }
    throw ruleError(src, { line, col, len: 1 }, `syntax error: unexpected character '${c}'`);
  }
  toks.push({ t: 'end', span: { line, col: col0 + text.length, len: 1 } });
  return toks;
}

/** Parse `text`, found on 1-based `line` starting at 1-based column `col0`, into an Expr. */
export function parseExpr(src: Source, line: number, text: string, col0: number): Expr {
  const toks = lex(src, line, text, col0);
  let pos = 0;
  let nesting = 0;
  const depths = new WeakMap<Expr, number>();
  /** Records e's tree depth (1 + its deepest child) and refuses a tree deeper than MAX_DEPTH. */
  const node = <E extends Expr>(e: E, ...children: Expr[]): E => {
    const d = 1 + Math.max(0, ...children.map((c) => depths.get(c) ?? 0));
    if (d > MAX_DEPTH) throw ruleError(src, e.span, `expression too deep: more than ${MAX_DEPTH} nested operations (split it with \`let\` lines)`);
    depths.set(e, d);
    return e;
  };
  /** Runs a nested parse (inside parentheses, a call, a sign or an exponent) at most MAX_NESTING deep. */
  const nested = <T>(at: Span, parse: () => T): T => {
    if (++nesting > MAX_NESTING) throw ruleError(src, at, `expression nested too deep: more than ${MAX_NESTING} levels of parentheses, calls, signs or powers`);
    const r = parse();
    nesting--;
    return r;
  };
  const peek = () => toks[pos];
  const isOp = (op: string) => {
    const t = toks[pos];
    return t.t === 'op' && t.op === op;
  };
  const describe = (t: Tok) => (t.t === 'end' ? 'the end of the expression' : t.t === 'num' ? `number ${t.value}` : t.t === 'name' ? `'${t.name}'` : `'${t.op}'`);
  const fail = (t: Tok, what: string): never => {
    throw ruleError(src, t.span, `syntax error: expected ${what}, found ${describe(t)}`);
  };

  function expr(): Expr {
    let left = term();
    while (isOp('+') || isOp('-')) {
      const op = (toks[pos++] as { op: BinaryOp }).op;
      const right = term();
      left = node({ kind: 'binary', op, left, right, span: joinSpans(left.span, right.span) }, left, right);
    }
    return left;
  }
  function term(): Expr {
    let left = unary();
    for (;;) {
      if (isOp('*') || isOp('/') || isOp('.*') || isOp('./')) {
        const op = (toks[pos++] as { op: BinaryOp }).op;
        const right = unary();
        left = node({ kind: 'binary', op, left, right, span: joinSpans(left.span, right.span) }, left, right);
        continue;
      }
      const t = peek();
      if (t.t === 'num' || t.t === 'name' || isOp('(')) {
        throw ruleError(src, t.span, `syntax error: implicit multiplication is not supported, write '*' before ${describe(t)}`);
      }
      return left;
    }
  }
  function unary(): Expr {
    if (isOp('-') || isOp('+')) {
      const t = toks[pos++] as { op: string; span: Span };
      const arg = nested(t.span, unary);
      const span = joinSpans(t.span, arg.span);
      return t.op === '-' ? node({ kind: 'neg', arg, span }, arg) : node({ ...arg, span }, arg);
    }
    return power();
  }
  function power(): Expr {
    const base = postfix();
    if (isOp('^') || isOp('.^')) {
      const t = toks[pos++] as { op: BinaryOp; span: Span };
      const exponent = nested(t.span, unary);
      return node({ kind: 'binary', op: t.op, left: base, right: exponent, span: joinSpans(base.span, exponent.span) }, base, exponent);
    }
    return base;
  }
  function postfix(): Expr {
    let e = primary();
    while (isOp("'")) {
      const t = toks[pos++];
      e = node({ kind: 'transpose', arg: e, span: joinSpans(e.span, t.span) }, e);
    }
    return e;
  }
  function primary(): Expr {
    const t = toks[pos];
    if (t.t === 'num') {
      pos++;
      return { kind: 'num', value: t.value, span: t.span };
    }
    if (t.t === 'name') {
      pos++;
      if (!isOp('(')) return { kind: 'sym', name: t.name, span: t.span };
      pos++;
      const args: Expr[] = [];
      nested(t.span, () => {
        if (isOp(')')) return;
        args.push(expr());
        while (isOp(',')) {
          pos++;
          args.push(expr());
        }
      });
      const close = peek();
      if (!isOp(')')) fail(close, `',' or ')' in the call of ${t.name}`);
      pos++;
      return node({ kind: 'call', fn: t.name, fnSpan: t.span, args, span: joinSpans(t.span, close.span) }, ...args);
    }
    if (isOp('(')) {
      const open = toks[pos++];
      const inner = nested(open.span, expr);
      const close = peek();
      if (!isOp(')')) fail(close, `')' to close the '(' at column ${open.span.col}`);
      pos++;
      return node({ ...inner, span: joinSpans(open.span, close.span) }, inner);
    }
    return fail(t, 'a number, a name or (');
  }

  if (peek().t === 'end') fail(peek(), 'an expression');
  const e = expr();
  if (peek().t !== 'end') fail(peek(), 'an operator or the end of the expression');
  return e;
}
