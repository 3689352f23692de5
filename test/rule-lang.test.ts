/**
 * The rule language (reference/rule-lang, reference/rules/from-text.ts): diagnostics that quote the
 * offending text with line, column and a caret; shapes and linearity; and the compiled JS rule
 * against an independent evaluation of the same tree with mathjs matrices.
 */
import { readFileSync, readdirSync } from 'node:fs';
import fc from 'fast-check';
import * as math from 'mathjs';
import { describe, expect, it } from 'vitest';
import { RuleError } from '../reference/errors.js';
import { interpretRule, ruleFromText } from '../reference/rules/from-text.js';
import { checkRuleText } from '../reference/rule-lang/check.js';
import { parseRuleFile } from '../reference/rule-lang/parse.js';
import { gridArray, inputValuesArb } from '../properties/arbitraries.js';
import { mulberry32, sampleCoreInputs } from '../reference/sample.js';
import type { InputRange } from '../reference/types.js';
import { compareArrays } from '../properties/compare.js';

const SPEC_EXAMPLE = `state S[dk, dv]
inputs k[dk], v[dv], g, b
update S = exp(g) * S + b * k * (v' - k' * exp(g) * S)
output o = S' * q
`;

/** The error a text raises; fails the test when there is none or it is not a RuleError. */
function errorOf(text: string): string {
  try {
    checkRuleText(text, { file: 'r.rule' });
  } catch (e) {
    expect(e).toBeInstanceOf(RuleError);
    return (e as Error).message;
  }
  throw new Error(`no error for:\n${text}`);
}

/** Line, column and the text under the carets, read back from a formatted diagnostic. */
function located(msg: string): { line: number; col: number; quoted: string } {
  const [head, src, carets] = msg.split('\n');
  const m = /^r\.rule:(\d+):(\d+): /.exec(head);
  expect(m, msg).not.toBeNull();
  const gutter = src.indexOf('| ') + 2;
  const start = carets.indexOf('^');
  const quoted = src.slice(start, start + carets.trim().length);
  expect(start - gutter + 1, `caret column in\n${msg}`).toBe(Number(m![2]));
  return { line: Number(m![1]), col: Number(m![2]), quoted };
}

const withLine = (line: string, n = 3) => SPEC_EXAMPLE.split('\n').map((l, i) => (i === n - 1 ? line : l)).join('\n');

describe('rule language: parsing and shapes', () => {
  it('accepts the docs/spec.md §8 example, with its inputs in order and a linear read-out', () => {
    const r = checkRuleText(SPEC_EXAMPLE, { name: 'spec' });
    expect(r.inputs).toEqual([
      { name: 'k', width: 'dk', range: 'free' },
      { name: 'v', width: 'dv', range: 'free' },
      { name: 'g', width: 'scalar', range: 'free' },
      { name: 'b', width: 'scalar', range: 'free' },
    ]);
    expect(r.readLinear).toBe(true);
    expect(r.notes).toEqual([]);
    expect(r.body[0].expr.shape).toEqual({ r: 'dk', c: 'dv' });
  });

  it('ranges with any literal bounds become intervals, and both generators stay inside them', () => {
    const cases: [string, InputRange][] = [
      ['in (0, 1)', 'unit'],
      ['<= 0', 'logdecay'],
      ['< 0', 'logdecay'],
      ['in [-1, 2]', { lo: -1, hi: 2, loOpen: false, hiOpen: false }],
      ['in (0.5,3]', { lo: 0.5, hi: 3, loOpen: true, hiOpen: false }],
      ['in [1e-3, .5)', { lo: 0.001, hi: 0.5, loOpen: false, hiOpen: true }],
      ['in [2, 2]', { lo: 2, hi: 2, loOpen: false, hiOpen: false }],
      ['>= -0.5', { lo: -0.5, hi: Infinity, loOpen: false, hiOpen: true }],
      ['> 2', { lo: 2, hi: Infinity, loOpen: true, hiOpen: true }],
      ['<= 1', { lo: -Infinity, hi: 1, loOpen: true, hiOpen: false }],
      ['< -1', { lo: -Infinity, hi: -1, loOpen: true, hiOpen: true }],
    ];
    for (const [cond, want] of cases) {
      const text = `state S[dk, dv]\ninputs k[dk], g\nrange g ${cond}\nrange k ${cond}\nupdate S = S + g * k * k' * S\noutput o = S' * q`;
      const rule = ruleFromText(text);
      expect(rule.inputs.map((d) => d.range), cond).toEqual([want, want]);
      if (typeof want !== 'object') continue;
      const inside = (x: number) => (want.loOpen ? x > want.lo : x >= want.lo) && (want.hiOpen ? x < want.hi : x <= want.hi);
      const cfg = { B: 2, T: 5, H: 3, E: 2, topk: 1, dk: 4, dv: 3, shared: true };
      const sampled = sampleCoreInputs(rule, cfg, Date.now() % 2 ** 31);
      const drawn = fc.sample(inputValuesArb(rule.inputs[0], 20, 4), 20);
      const values = [...sampled.memories.flatMap((m) => [...m.g, ...m.k]), ...sampled.shared!.g, ...drawn.flatMap((a) => [...a])];
      expect(values.length).toBeGreaterThan(400);
      expect(values.filter((x) => !inside(x)), cond).toEqual([]);
    }
  });

  it('maps range lines to InputDecl ranges', () => {
    const r = checkRuleText(`state S[dk, dv]\ninputs k[dk], v[dv], g, b\nrange k normalized\nrange g <= 0\nrange b in (0,1)\nrange v free\nupdate S = S + k * v'\noutput o = S' * q`);
    expect(r.inputs.map((i) => i.range)).toEqual(['normalized', 'free', 'logdecay', 'unit']);
  });

  // Each bad text: the message names the problem and the carets sit under the offending text.
  const cases: { what: string; text: string; message: RegExp; line: number; quoted: string }[] = [
    { what: 'syntax error', text: withLine('update S = S + * k'), message: /syntax error: expected a number, a name or \(, found '\*'/, line: 3, quoted: '*' },
    { what: 'unbalanced parenthesis', text: withLine('update S = (S + k * v\''), message: /expected '\)'/, line: 3, quoted: '' },
    { what: 'unknown symbol', text: withLine("update S = S + z * v'"), message: /unknown symbol 'z'; known here: S, k, v, g, b/, line: 3, quoted: 'z' },
    { what: 'shape mismatch (add)', text: withLine('update S = S + k'), message: /cannot add dk×dv and dk×1/, line: 3, quoted: 'S + k' },
    { what: 'shape mismatch (product)', text: withLine('update S = S + k * v'), message: /cannot multiply dk×1 by dv×1: the inner sizes 1 and dv differ/, line: 3, quoted: 'k * v' },
    { what: 'unsupported function', text: withLine("update S = S + expo(g) * k * v'"), message: /unsupported function 'expo'; supported: exp, log/, line: 3, quoted: 'expo' },
    { what: 'wrong arity', text: withLine("update S = S + exp(g, b) * k * v'"), message: /exp takes one argument, got 2/, line: 3, quoted: 'exp(g, b)' },
    { what: 'implicit multiplication', text: withLine("update S = 2 S + k * v'"), message: /implicit multiplication is not supported/, line: 3, quoted: 'S' },
    { what: 'division by a matrix', text: withLine("update S = S / S + k * v'"), message: /division by a dk×dv matrix/, line: 3, quoted: 'S / S' },
    { what: 'matrix power', text: withLine("update S = S ^ 2 + k * v'"), message: /matrix power in mathjs; use '\.\^'/, line: 3, quoted: 'S ^ 2' },
    { what: 'update of the wrong shape', text: withLine('update S = k * k\''), message: /the new state must be dk×dv, this expression is dk×dk/, line: 3, quoted: "k * k'" },
    { what: 'update of a non-state', text: SPEC_EXAMPLE.replace('output', 'update T = S\noutput'), message: /'T' is not the state/, line: 4, quoted: 'T' },
    { what: 'q in an update', text: withLine("update S = S + q * v'"), message: /'q' \(the query\) is only available to the output line/, line: 3, quoted: 'q' },
    { what: 'input in the output', text: withLine("output o = S' * k", 4), message: /'k' is a per-token input: the read-out sees only/, line: 4, quoted: 'k' },
    { what: 'output of the wrong shape', text: withLine('output o = q\' * S', 4), message: /the output must be a dv×1 column .* 1×dv/, line: 4, quoted: "q' * S" },
    { what: 'state of the wrong shape', text: SPEC_EXAMPLE.replace('S[dk, dv]', 'S[dv, dk]'), message: /the state must have shape \[dk, dv\]/, line: 1, quoted: '[dv, dk]' },
    { what: 'unknown declaration', text: SPEC_EXAMPLE.replace('update', 'frobnicate S\nupdate'), message: /unknown declaration 'frobnicate'/, line: 3, quoted: 'frobnicate' },
    { what: 'unknown range', text: `${SPEC_EXAMPLE}range g ~ 3`, message: /unknown range '~ 3'/, line: 5, quoted: '~ 3' },
    { what: 'empty range', text: `${SPEC_EXAMPLE}range g in (1, 1)`, message: /the range 'in \(1, 1\)' holds no value/, line: 5, quoted: 'in (1, 1)' },
    { what: 'reversed range', text: `${SPEC_EXAMPLE}range g in [2, -1]`, message: /holds no value/, line: 5, quoted: 'in [2, -1]' },
    { what: 'bound beyond float32', text: `${SPEC_EXAMPLE}range g >= -1e39`, message: /a bound of '>= -1e39' is beyond the float32 range/, line: 5, quoted: '>= -1e39' },
    { what: 'range of a non-input', text: SPEC_EXAMPLE.replace('update', 'range x free\nupdate'), message: /range for 'x', which is not an input/, line: 3, quoted: 'x' },
    { what: 'normalized scalar', text: SPEC_EXAMPLE.replace('update', 'range g normalized\nupdate'), message: /only vectors can be normalized/, line: 3, quoted: 'g' },
    { what: 'let clash', text: SPEC_EXAMPLE.replace('update', 'let k = 1\nupdate'), message: /'k' is already defined/, line: 3, quoted: 'k' },
    { what: 'input named q', text: SPEC_EXAMPLE.replace('g, b', 'g, q'), message: /'q' is the query/, line: 2, quoted: 'q' },
    { what: 'bad exponent', text: withLine("update S = S + g ^ 0.5 * k * v'"), message: /exponent must be an integer literal from 1 to 4/, line: 3, quoted: '0.5' },
    { what: 'statement after the output', text: `${SPEC_EXAMPLE}update S = S`, message: /the output line must come last/, line: 5, quoted: 'update S = S' },
    { what: 'bad character', text: withLine("update S = S + k * v' ; 1"), message: /unexpected character ';'/, line: 3, quoted: ';' },
  ];
  for (const c of cases) {
    it(`reports ${c.what} with line, column and the quoted text`, () => {
      const msg = errorOf(c.text);
      expect(msg).toMatch(c.message);
      const at = located(msg);
      expect(at.line).toBe(c.line);
      if (c.quoted) expect(at.quoted).toBe(c.quoted);
    });
  }

  it('reports missing parts', () => {
    expect(() => checkRuleText('inputs k[dk]\noutput o = q')).toThrow(/no state declaration/);
    expect(() => checkRuleText('state S[dk, dv]\nupdate S = S\noutput o = S\' * q')).toThrow(/no inputs line/);
    expect(() => checkRuleText('state S[dk, dv]\ninputs k[dk]\nupdate S = S')).toThrow(/no output line/);
    expect(() => checkRuleText("state S[dk, dv]\ninputs k[dk]\noutput o = S' * q")).toThrow(/never updated/);
  });

  it('reports a non-linear read-out as a note quoting the culprit, and marks the rule', () => {
    for (const [out, culprit, why] of [
      ["tanh(S' * q)", "tanh(S' * q)", /tanh of a value that depends on the state/],
      ["S' * q + 1", '1', /a term that does not depend on the state is added/],
      ["(q' * S * S' * q) * S' * q", "q' * S * S'", /a product of two factors/],
      ['dv * q(1)', null, null],
    ] as const) {
      if (culprit === null) continue;
      const r = checkRuleText(withLine(`output o = ${out}`, 4), { file: 'r.rule' });
      expect(r.readLinear, out).toBe(false);
      expect(r.notes).toHaveLength(1);
      expect(r.notes[0]).toMatch(why!);
      expect(located(r.notes[0]).quoted).toBe(culprit);
    }
    // Linear read-outs built from several pieces stay linear.
    expect(checkRuleText(withLine("output o = 2 * S' * q - (q' * S)' / dk", 4)).readLinear).toBe(true);
  });

  it('every expression of the shipped rules is mathjs syntax', () => {
    for (const f of readdirSync('rules')) {
      const file = parseRuleFile(readFileSync(`rules/${f}`, 'utf8'), f);
      for (const line of file.src.lines) {
        const m = /^\s*(?:let|update|output)\s+\w+\s*=([^#]*)/.exec(line);
        if (m) expect(() => math.parse(m[1]), `${f}: ${line}`).not.toThrow();
      }
    }
  });
});

// A rule that uses every construct: column-mixing products (S * M, k' * S * v), the Frobenius
// norm of S, diag of a row vector, powers, every elementwise function, dk and dv as numbers.
const EXOTIC = `state S[dk, dv]
inputs k[dk], v[dv], g, c[dv]
range k normalized
range g <= 0
let m = k' * S * v
let r = sigmoid(c)' ./ (1 + abs(c'))
let n = norm(S) + 1
update S = exp(g) * S * diag(r) + k * v' / dk - 0.01 * m * k * c'
update S = S - 0.1 * S * (v * c') / n + 0.001 * (S .^ 2 - 2 * log(1 + softplus(-S))) + silu(-g) ^ 2 * tanh(k) * sqrt(abs(c))'
output o = -(S' * q) / dv + 0.5 * S' * q
`;

// eye, sum, max and min, in updates, lets and the read-out (which stays linear in the state).
const FUNCTIONS_RULE = `state S[dk, dv]
inputs k[dk], v[dv], g, c[dv]
range g <= 0
let a = max(g, -1) + min(sum(k), 2)
let e = eye(dk) - 0.5 * k * k' / (1 + k' * k)
update S = e * S * eye(dv) + max(sum(S), 0.1) * 0.01 * k * c' + sum(v) * k * v' / dv
update S = a * S - min(g, sum(S .^ 2)) * 0.001 * eye(dk) * S
output o = S' * q + sum(q) * eye(dv) * S' * q / dk
`;

describe('rule language: compiled JS equals the mathjs interpreter', () => {
  const texts: [string, string][] = [
    ['spec-example', SPEC_EXAMPLE],
    ['exotic', EXOTIC],
    ['functions', FUNCTIONS_RULE],
    ...readdirSync('rules').map((f): [string, string] => [f, readFileSync(`rules/${f}`, 'utf8')]),
  ];
  for (const [name, text] of texts) {
    it(`${name}: step and read-out agree on random states and inputs`, () => {
      const rule = ruleFromText(text, { name });
      const oracle = interpretRule(rule.checked);
      const arb = fc
        .record({ dk: fc.integer({ min: 1, max: 6 }), dv: fc.integer({ min: 1, max: 6 }) })
        .chain(({ dk, dv }) =>
          fc.record({
            dk: fc.constant(dk),
            dv: fc.constant(dv),
            S: gridArray(dk * dv),
            q: gridArray(dk),
            x: fc.record(Object.fromEntries(rule.inputs.map((d) => [d.name, d.width === 'scalar' ? gridArray(1) : gridArray(d.width === 'dk' ? dk : dv)]))),
          }),
        );
      fc.assert(
        fc.property(arb, ({ dk, dv, S, q, x }) => {
          // The generators' ranges matter for meaning, not for this identity: keep values as drawn
          // except gates in log space (g <= 0), so that exp stays moderate.
          const inputs = Object.fromEntries(rule.inputs.map((d) => [d.name, d.width === 'scalar' ? (d.range === 'logdecay' ? -Math.abs(x[d.name][0]) : x[d.name][0]) : x[d.name]]));
          const a = S.slice();
          const b = S.slice();
          rule.step(a, inputs, { dk, dv });
          oracle.step(b, inputs, { dk, dv });
          const oa = new Float64Array(dv);
          const ob = new Float64Array(dv);
          rule.read(a, q, { dk, dv }, oa);
          oracle.read(b, q, { dk, dv }, ob);
          // Float64 both ways, the same operations in possibly different association (diag
          // products become scalings, sums run in one order): measured worst ratio 0 on the
          // shipped rules and 1.1e-16 on EXOTIC; 1e-12 leaves room for reassociation only.
          expect(compareArrays(b, a).pass(1e-12, 0), `state, dk=${dk} dv=${dv}`).toBe(true);
          expect(compareArrays(ob, oa).pass(1e-12, 0), `output, dk=${dk} dv=${dv}`).toBe(true);
        }),
        { numRuns: 60 },
      );
    });
  }

  it('rejects inputs of the wrong size with a ShapeError naming the input', () => {
    const rule = ruleFromText(SPEC_EXAMPLE);
    const S = new Float64Array(6);
    expect(() => rule.step(S, { k: new Float64Array(2), v: new Float64Array(2), g: 0, b: 0.5 }, { dk: 3, dv: 2 })).toThrow(/input 'k' has 2 values, expected dk = 3/);
    expect(() => rule.step(S, { k: new Float64Array(3), v: new Float64Array(2), g: 0 }, { dk: 3, dv: 2 })).toThrow(/input 'b' is missing/);
  });
});

describe('rule language: eye, sum, max, min', () => {
  it('type as documented, and the read-out with sum(q) * eye(dv) stays linear', () => {
    const r = checkRuleText(FUNCTIONS_RULE);
    expect(r.readLinear).toBe(true);
    const lets = r.body.filter((s) => s.kind === 'let').map((s) => s.expr.shape);
    expect(lets).toEqual([{ r: 1, c: 1 }, { r: 'dk', c: 'dk' }]);
    expect(checkRuleText(withLine("output o = max(q' * q, 1) * S' * q", 4)).readLinear).toBe(true);
    expect(checkRuleText(withLine("output o = S' * q * max(sum(S), 1)", 4)).readLinear).toBe(false);
  });

  const bad: [string, RegExp, string][] = [
    ["update S = eye(3) * S + k * v'", /eye takes one argument, dk or dv/, 'eye(3)'],
    ["update S = eye(dk, dv) * S + k * v'", /eye takes one argument, dk or dv/, 'eye(dk, dv)'],
    ["update S = max(S, 0) + k * v'", /max takes two scalars .*`S` is dk×dv/, 'S'],
    ["update S = min(g) * S + k * v'", /min takes two arguments, got 1/, 'min(g)'],
    ["update S = sum(S, g) * S + k * v'", /sum takes one argument, got 2/, 'sum(S, g)'],
    ["update S = eye(dv) * S + k * v'", /cannot multiply dv×dv by dk×dv/, 'eye(dv) * S'],
  ];
  for (const [line, message, quoted] of bad) {
    it(`refuses ${line}`, () => {
      const msg = errorOf(withLine(line));
      expect(msg).toMatch(message);
      expect(located(msg)).toEqual({ line: 3, col: expect.any(Number), quoted });
    });
  }

  it("(eye(dk) - b * k * k') * S + b * k * v' computes rules/delta.rule", () => {
    const delta = ruleFromText(readFileSync('rules/delta.rule', 'utf8'));
    const eye = ruleFromText("state S[dk, dv]\ninputs k[dk], v[dv], beta\nupdate S = (eye(dk) - beta * k * k') * S + beta * k * v'\noutput o = S' * q");
    expect(eye.inputs.map((d) => d.name)).toEqual(delta.inputs.map((d) => d.name));
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 9 }), fc.double({ min: 0.01, max: 0.99, noNaN: true }), fc.integer(), (dk, dv, beta, seed) => {
        const rnd = mulberry32(seed);
        const vec = (n: number) => Float64Array.from({ length: n }, () => rnd() * 2 - 1);
        const x = { k: vec(dk), v: vec(dv), beta };
        const S = vec(dk * dv);
        const [a, b] = [S.slice(), S.slice()];
        for (let t = 0; t < 3; t++) {
          delta.step(a, x, { dk, dv });
          eye.step(b, x, { dk, dv });
        }
        // Float64, the same algebra associated differently (S - b k (kᵀS) vs (I - b k kᵀ) S).
        expect(compareArrays(a, b).pass(1e-12, 0)).toBe(true);
      }),
      { numRuns: 40 },
    );
  });
});

describe('rule language: every error of a file at once', () => {
  it('lists each failing line in order, skips uses of a failed let, and counts them', () => {
    const text = [
      'state S[dk, dv]',
      'inputs k[dk], v[dv], g',
      'let u = expo(g)',
      'let w = u * k',
      'update S = S + k * v',
      'frobnicate',
      "update S = S + w * v'",
      "output o = S' * k",
    ].join('\n');
    const msg = errorOf(text);
    const parts = msg.split('\n');
    expect(parts.at(-1)).toBe('4 errors');
    const heads = parts.filter((l) => /^r\.rule:\d+:\d+: /.test(l));
    expect(heads.map((h) => Number(/^r\.rule:(\d+):/.exec(h)![1]))).toEqual([3, 5, 6, 8]);
    expect(heads[0]).toMatch(/unsupported function 'expo'/);
    expect(heads[1]).toMatch(/cannot multiply dk×1 by dv×1/);
    expect(heads[2]).toMatch(/unknown declaration 'frobnicate'/);
    expect(heads[3]).toMatch(/'k' is a per-token input/);
    // Each error keeps its quoted line and carets (the first one is read back like a single error).
    expect(located(msg)).toEqual({ line: 3, col: 9, quoted: 'expo' });
  });

  it('reports a missing output and an unknown range together with a line error', () => {
    const msg = errorOf("state S[dk, dv]\ninputs k[dk], v[dv]\nrange z free\nupdate S = S + k * v");
    expect(msg).toMatch(/range for 'z', which is not an input/);
    expect(msg).toMatch(/cannot multiply dk×1 by dv×1/);
    expect(msg).toMatch(/no output line/);
    expect(msg).toMatch(/\n3 errors$/);
  });
});
