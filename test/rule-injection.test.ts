/**
 * No text of a rule file becomes code (issue 14 §1). A rule carries a payload that would write a
 * file and set a global if it ever ran, behind every character that ends a line comment in
 * JavaScript or WGSL (\r, U+2028, U+2029), behind comment and string closers (`*\/`, backticks,
 * `${`) and NUL, in comments, names and the file name. Each rule must either compile and compute
 * exactly what the same rule without the payload computes, or be refused with a RuleError; the
 * generated JavaScript and WGSL hold none of the payload; the WGSL compiles; and afterwards the
 * file does not exist and the global is unset. Names that are keywords of JavaScript or WGSL work,
 * since names never reach code; nesting is bounded with a RuleError instead of a stack overflow.
 */
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getGpu, type GpuContext } from '../gpu/device.js';
import { gpuRuleFromText } from '../gpu/kernels/from-text.js';
import { gpuMomForward } from '../gpu/mom.js';
import { RuleError } from '../reference/errors.js';
import { momForward } from '../reference/mom.js';
import { checkGenerated } from '../reference/rule-lang/emit.js';
import { MAX_DEPTH, MAX_NESTING } from '../reference/rule-lang/expr.js';
import { checkRuleText } from '../reference/rule-lang/check.js';
import { interpretRule, ruleFromText, type TextRule } from '../reference/rules/from-text.js';
import type { Rule } from '../reference/types.js';
import { coreCaseArb, SIZES } from '../properties/arbitraries.js';
import { compareAll, describeFailures } from '../properties/compare.js';
import { TEXT_GPU_TOL } from '../properties/rule-file.js';

const FILE = join(tmpdir(), `momlab-rule-injection-${process.pid}`);
const GLOBAL = '__momlabRuleInjected';
const PAYLOAD = `globalThis.${GLOBAL} = 1; process.getBuiltinModule("fs").writeFileSync(${JSON.stringify(FILE)}, "ran"); //`;
/** Words of the payload: none may appear in generated code. */
const PAYLOAD_WORDS = ['globalThis', GLOBAL, 'process', 'getBuiltinModule', 'writeFileSync', 'ran'];
/** What may end a comment or a string, or otherwise confuse a code generator. */
const BREAKERS = ['\r', '\u2028', '\u2029', '\u0085', '*/', '`', '${', '\0', '"', "'", '\\'];

const CLEAN = [
  'state S[dk, dv]',
  'inputs k[dk], v[dv], g, beta',
  'range g <= 0',
  'let u = exp(g) * S',
  'update S = u + beta * k * (v\' - k\' * u)',
  'output o = S\' * q',
].join('\n');

/** The clean rule with `insert` appended to its line `line` (0-based). */
function carrier(line: number, insert: string): string {
  return CLEAN.split('\n')
    .map((l, i) => (i === line ? l + insert : l))
    .join('\n');
}

const CASES: { what: string; text: string }[] = BREAKERS.flatMap((b) => [
  { what: `a comment on the update line, then ${JSON.stringify(b)}`, text: carrier(4, `  # note${b}${PAYLOAD}`) },
  { what: `a comment on the output line, then ${JSON.stringify(b)}`, text: carrier(5, ` #${b}${PAYLOAD}${b}`) },
  { what: `${JSON.stringify(b)} inside an expression`, text: carrier(4, ` ${b}${PAYLOAD}`) },
  { what: `${JSON.stringify(b)} after an input name`, text: carrier(1, `${b}${PAYLOAD}`) },
  { what: `${JSON.stringify(b)} after the state name`, text: CLEAN.replace('state S[', `state S${b}${PAYLOAD}[`) },
]);

let ctx: GpuContext;
beforeAll(async () => {
  rmSync(FILE, { force: true });
  delete (globalThis as Record<string, unknown>)[GLOBAL];
  ctx = await getGpu();
});
afterAll(() => {
  // The point of the file: nothing any rule carried has run.
  expect(existsSync(FILE), `${FILE} was written by a rule`).toBe(false);
  expect((globalThis as Record<string, unknown>)[GLOBAL]).toBeUndefined();
});

function expectNoPayload(generated: string, what: string) {
  const code = generated.replace(/^"use strict";\n/, ''); // the one string momlab's JavaScript starts with
  for (const w of PAYLOAD_WORDS) expect(code.includes(w), `${what} contains '${w}':\n${code}`).toBe(false);
  for (const b of ['\r', '\u2028', '\u2029', '\u0085', '\0', '`', '"', '\\']) expect(code.includes(b), `${what} contains ${JSON.stringify(b)}`).toBe(false);
}

/** The rule's step and read-out on fresh random states and inputs, equal to `want`'s bit for bit. */
function expectSameRule(got: Rule, want: Rule, runs = 4) {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 7 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (dk, dv, seed) => {
      let s = seed;
      const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
      const arr = (n: number) => Float64Array.from({ length: n }, rnd);
      const dims = { dk, dv };
      const x = { k: arr(dk), v: arr(dv), g: -Math.abs(rnd()) - 0.01, beta: Math.abs(rnd()) };
      const S0 = arr(dk * dv);
      const q = arr(dk);
      const [a, b] = [S0.slice(), S0.slice()];
      got.step(a, x, dims);
      want.step(b, x, dims);
      expect(Array.from(a)).toEqual(Array.from(b));
      const [oa, ob] = [new Float64Array(dv), new Float64Array(dv)];
      got.read(a, q, dims, oa);
      want.read(b, q, dims, ob);
      expect(Array.from(oa)).toEqual(Array.from(ob));
    }),
    { numRuns: runs },
  );
}

/** Compiles `code` on the device: no error messages, and a pipeline without a validation error. */
async function expectCompiles(code: string) {
  const module = ctx.device.createShaderModule({ code });
  const info = await module.getCompilationInfo();
  expect(info.messages.filter((m) => m.type === 'error').map((m) => `${m.lineNum}:${m.linePos} ${m.message}`)).toEqual([]);
  ctx.device.pushErrorScope('validation');
  ctx.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  expect((await ctx.device.popErrorScope())?.message).toBeUndefined();
}

const clean = ruleFromText(CLEAN);
const P = { H: 2, dk: 5, dv: 3, withHistory: true };

describe('rule text never becomes code', () => {
  it('the carriers cover every breaker in every place, and some compile (comments) while others are refused', () => {
    let compiled = 0;
    let refused = 0;
    for (const c of CASES) {
      try {
        ruleFromText(c.text);
        compiled++;
      } catch (e) {
        expect(e, c.what).toBeInstanceOf(RuleError);
        refused++;
      }
    }
    expect(CASES.length).toBe(BREAKERS.length * 5);
    expect(compiled).toBeGreaterThanOrEqual(BREAKERS.length * 2);
    expect(refused).toBeGreaterThanOrEqual(BREAKERS.length * 2);
  });

  for (const c of CASES) {
    it(`${c.what}: runs as the clean rule (compiled, interpreted, WGSL) or is refused with a RuleError`, async () => {
      let rule: TextRule;
      try {
        rule = ruleFromText(c.text, { file: 'x.rule' });
      } catch (e) {
        expect(e, String(e)).toBeInstanceOf(RuleError);
        expect(() => gpuRuleFromText(c.text)).toThrow(RuleError);
        return;
      }
      for (const js of Object.values(rule.jsSource)) expectNoPayload(js, 'the generated JavaScript');
      expectSameRule(rule, clean);
      expectSameRule(interpretRule(rule.checked), clean);
      const wgsl = gpuRuleFromText(c.text).wgsl(P);
      expectNoPayload(wgsl, 'the generated WGSL');
      expect(wgsl).toBe(gpuRuleFromText(CLEAN).wgsl(P));
    });
  }

  it('a file name carrying the payload reaches no code either', () => {
    const file = `evil\u2028${PAYLOAD}\r*/.rule`;
    const rule = ruleFromText(CLEAN, { file });
    for (const js of Object.values(rule.jsSource)) expectNoPayload(js, 'the generated JavaScript');
    const wgsl = gpuRuleFromText(CLEAN, { file }).wgsl(P);
    expectNoPayload(wgsl, 'the generated WGSL');
    expectSameRule(rule, clean);
  });

  it('the exact reproduction of issue 14 compiles to code without the payload, and the WGSL compiles', async () => {
    const text = carrier(4, ` # note\u2028process.getBuiltinModule("fs").writeFileSync(${JSON.stringify(FILE)},"ran")`);
    const rule = ruleFromText(text);
    expectSameRule(rule, clean);
    await expectCompiles(gpuRuleFromText(text).wgsl(P));
  });
});

// Keywords and special names of JavaScript, WGSL and Object.prototype, as every kind of name.
const KEYWORD_RULE = [
  'state fn[dk, dv]',
  'inputs var[dk], return[dv], loop, default',
  'range loop <= 0',
  'let __proto__ = exp(loop) * fn',
  'let constructor = default',
  'let in0 = __proto__',
  'update fn = in0 + constructor * var * (return\' - var\' * in0)',
  'output this = fn\' * q',
].join('\n');

describe('names that are keywords of JavaScript or WGSL', () => {
  it('work: the rule computes exactly what the same rule with plain names computes', () => {
    const rule = ruleFromText(KEYWORD_RULE);
    expect(rule.inputs.map((d) => d.name)).toEqual(['var', 'return', 'loop', 'default']);
    // The test drives rules with inputs named k, v, g, beta: hand them over under the keyword names.
    const renamed = (r: Rule): Rule => ({ ...r, step: (S, x, dims) => r.step(S, { var: x.k, return: x.v, loop: x.g, default: x.beta }, dims), read: r.read });
    expectSameRule(renamed(rule), clean, 8);
    expectSameRule(renamed(interpretRule(rule.checked)), clean, 4);
  });

  it('work on the GPU: the WGSL compiles and one small case matches the reference', async () => {
    const ref = ruleFromText(KEYWORD_RULE);
    const gpu = gpuRuleFromText(KEYWORD_RULE);
    await expectCompiles(gpu.wgsl(P));
    const [c] = fc.sample(coreCaseArb(ref.inputs, { ...SIZES.small, T: [1, 6] as const }), { numRuns: 1, seed: Date.now() % 2 ** 31 });
    const a = momForward(ref, c.cfg, c.x, { initial: c.initial });
    const b = await gpuMomForward(ctx, gpu, c.cfg, c.x, { mode: 'recurrent', initial: c.initial });
    const cmp = compareAll([
      { what: 'o', ref: a.o, got: b.o },
      { what: 'final.routed', ref: a.final.routed, got: b.final.routed },
    ]);
    expect(cmp.items.every((i) => i.pass(TEXT_GPU_TOL)), describeFailures(cmp.items, TEXT_GPU_TOL)).toBe(true);
  });

  it('input names that are Object.prototype properties are refused with a clear message', () => {
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      expect(() => checkRuleText(CLEAN.replace('inputs k[dk]', `inputs ${name}[dk]`).replaceAll("k'", `${name}'`).replace('* k *', `* ${name} *`))).toThrow(
        new RegExp(`'${name}' cannot be an input name`),
      );
    }
  });
});

describe('limits that keep bad input from breaking the compiler', () => {
  const withUpdate = (expr: string) => CLEAN.replace(/^update .*$/m, `update S = ${expr}`);
  const errorOf = (text: string) => {
    try {
      ruleFromText(text, { file: 'r.rule' });
    } catch (e) {
      expect(e).toBeInstanceOf(RuleError);
      return (e as Error).message;
    }
    throw new Error('no error');
  };

  it(`1500 nested parentheses give a RuleError naming the limit (${MAX_NESTING}), not a stack overflow`, () => {
    expect(errorOf(withUpdate(`${'('.repeat(1500)}S${')'.repeat(1500)}`))).toMatch(/^r\.rule:5:\d+: expression nested too deep: more than 100 levels/);
    expect(errorOf(withUpdate(`${'exp('.repeat(1500)}S${')'.repeat(1500)}`))).toMatch(/nested too deep/);
    expect(errorOf(withUpdate(`${'-'.repeat(1500)}S`))).toMatch(/nested too deep/);
  });

  it(`a sum of more than ${MAX_DEPTH} terms is refused; a 300-term sum compiles in JS and WGSL and is right`, async () => {
    expect(errorOf(withUpdate(Array.from({ length: 3000 }, () => "k * v'").join(' + ')))).toMatch(/^r\.rule:5:\d+: expression too deep: more than 1000 nested operations/);
    const text = withUpdate(`S + ${Array.from({ length: 300 }, (_, n) => `${(n % 7) + 1} * k * v'`).join(' + ')}`);
    const rule = ruleFromText(text);
    const want = interpretRule(rule.checked);
    const dims = { dk: 3, dv: 2 };
    const S = Float64Array.from({ length: 6 }, () => Math.random() - 0.5);
    const x = { k: Float64Array.from({ length: 3 }, Math.random), v: Float64Array.from({ length: 2 }, Math.random), g: -0.5, beta: 0.5 };
    const [a, b] = [S.slice(), S.slice()];
    rule.step(a, x, dims);
    want.step(b, x, dims);
    for (let n = 0; n < 6; n++) expect(a[n]).toBeCloseTo(b[n], 10);
    await expectCompiles(gpuRuleFromText(text).wgsl(P));
  });

  it('a literal beyond float32 is refused naming its line; one within it runs', () => {
    expect(errorOf(withUpdate('1e39 * S'))).toMatch(/^r\.rule:5:12: the number 1e39 is beyond the float32 range/);
    expect(errorOf(withUpdate('S + 1e400'))).toMatch(/^r\.rule:5:16: the number 1e400 is beyond the float32 range/);
    expect(() => ruleFromText(withUpdate('3.4e38 * 0.0000001e-30 * S'))).not.toThrow();
  });

  it('the guard over generated code throws on a character or identifier momlab does not emit', () => {
    const vocab = new Set(['const', 'x']);
    expect(checkGenerated('const t1 = x[in0] + 1.5e-7;', vocab, 'JavaScript')).toBe('const t1 = x[in0] + 1.5e-7;');
    expect(() => checkGenerated('const t1 = y;', vocab, 'JavaScript')).toThrow(/identifier 'y'/);
    expect(() => checkGenerated('const t1 = x; // a\u2028b', vocab, 'JavaScript')).toThrow(/U\+2028/);
    expect(() => checkGenerated('const t1 = x;\r', vocab, 'JavaScript')).toThrow(/U\+000d/);
    expect(() => checkGenerated('const t1 = "x";', vocab, 'JavaScript')).toThrow(/U\+0022/);
    expect(() => checkGenerated('const in_1 = x;', vocab, 'JavaScript')).toThrow(/identifier 'in_1'/);
  });
});
