/**
 * Small DOM and MathML builders for the learn page. Text always goes in through textContent
 * (never innerHTML), so nothing a user pastes becomes markup.
 */
type Child = Node | string | null | false | undefined;

function fill(el: Element, children: Child[]): void {
  for (const c of children) if (c) el.append(typeof c === 'string' ? document.createTextNode(c) : c);
}

/** An HTML element with attributes and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  fill(el, children);
  return el;
}

const MATHML = 'http://www.w3.org/1998/Math/MathML';

/** A MathML element. */
export function m(tag: string, ...children: Child[]): MathMLElement {
  const el = document.createElementNS(MATHML, tag) as MathMLElement;
  fill(el, children);
  return el;
}

/** The trace CLI's number format: 4 decimals, or exponent form for very large or small values. */
export const fmt = (v: number): string => (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-4) ? v.toExponential(2) : v.toFixed(4));

/** A number, tagged with `key` so that tests and readers can find it (data-key). */
export function num(v: number, key?: string): MathMLElement {
  const el = m('mn', fmt(v));
  if (key) el.setAttribute('data-key', key);
  el.setAttribute('title', String(v));
  return el;
}

export const mi = (name: string, sub?: string): MathMLElement => (sub === undefined ? m('mi', name) : m('msub', m('mi', name), m('mi', sub)));
export const mo = (op: string): MathMLElement => m('mo', op);

/** A row vector [v0, v1, ...], its entries keyed `${key}.${i}`. */
export function vec(v: readonly number[], key?: string): MathMLElement {
  const row = m('mrow', mo('['));
  v.forEach((x, i) => {
    if (i > 0) row.append(mo(','));
    row.append(num(x, key ? `${key}.${i}` : undefined));
  });
  row.append(mo(']'));
  return row;
}

/** A matrix as a bracketed mtable, entries keyed `${key}.${i}.${j}`. */
export function mat(rows: readonly (readonly number[])[], key?: string): MathMLElement {
  const table = m('mtable');
  rows.forEach((r, i) => table.append(m('mtr', ...r.map((x, j) => m('mtd', num(x, key ? `${key}.${i}.${j}` : undefined))))));
  return m('mrow', mo('['), table, mo(']'));
}

/** A display-block formula: the parts in one row. */
export const formula = (...parts: Child[]): MathMLElement => {
  const el = m('math', m('mrow', ...parts));
  el.setAttribute('display', 'block');
  return el;
};
