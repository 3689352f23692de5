/**
 * `momlab trace` end to end: spawn the real command, parse every JSON line, check the fields,
 * and check that the two read-outs agree.
 *
 * Tolerance for mix after vs mix before: the two sum the same products in a different order;
 * over the cases below (and seeds 1, 2, 3, 100 of each) the largest difference measured is
 * 2.2e-16 (outputs up to 0.99 in magnitude), so 1e-13 is ~500x headroom, and a wrong mix is
 * off by far more (> 1e-3).
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { RULE_NAMES } from '../reference/rules/index.js';
import { runCli } from '../src/cli/main.js';

const MIX_TOL = 1e-13;

function momlab(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/momlab.js', ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * The same command line in this process (runCli, what the binary runs): spawning costs ~3 s of
 * tsx start-up per call on the CI machine, so only the first case of each kind goes through the
 * real binary.
 */
async function inProcess(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const status = await runCli(args, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } });
  return { status, stdout, stderr };
}

const isMatrix = (m: unknown, rows: number, cols: number): boolean =>
  Array.isArray(m) && m.length === rows && m.every((r) => Array.isArray(r) && r.length === cols && r.every(Number.isFinite));
const isVector = (v: unknown, n: number): boolean => Array.isArray(v) && v.length === n && v.every(Number.isFinite);

// Each case: a rule, sizes that are not all equal, and k = E or not, shared on or off.
const CASES = [
  { rule: 'gated-delta', E: 4, k: 2, dk: 3, dv: 2, T: 5, seed: 11, shared: true },
  { rule: 'gla', E: 3, k: 3, dk: 2, dv: 3, T: 4, seed: 2, shared: false },
  { rule: 'linear', E: 1, k: 1, dk: 1, dv: 2, T: 1, seed: 5, shared: true },
  { rule: 'delta', E: 5, k: 1, dk: 4, dv: 1, T: 3, seed: 9, shared: false },
  { rule: 'decay', E: 2, k: 2, dk: 2, dv: 2, T: 3, seed: 4, shared: true },
] as const;

describe('momlab trace --json', () => {
  CASES.forEach((c, i) =>
    it(`${c.rule}, E = ${c.E}, k = ${c.k}, dk = ${c.dk}, dv = ${c.dv}, T = ${c.T}, shared ${c.shared}${i === 0 ? ' (spawned)' : ''}`, async () => {
      const args = ['trace', '--rule', c.rule, '--memories', `${c.E}`, '--topk', `${c.k}`, '--dk', `${c.dk}`, '--dv', `${c.dv}`, '--tokens', `${c.T}`, '--seed', `${c.seed}`, '--json'];
      if (!c.shared) args.push('--no-shared');
      const r = i === 0 ? momlab(...args) : await inProcess(...args);
      expect(r.status, r.stderr).toBe(0);
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
      // the config, one line per token, the routing summary
      expect(lines.length).toBe(2 + c.T);
      expect(lines[0].scaled.q).toMatch(/s·q/);

      const { config } = lines[0];
      expect(config).toMatchObject({ rule: c.rule, E: c.E, topk: c.k, dk: c.dk, dv: c.dv, T: c.T, B: 1, H: 1, shared: c.shared, seed: c.seed });
      expect(config.scale).toBeCloseTo(1 / Math.sqrt(c.dk), 15);

      const usesG = c.rule === 'decay' || c.rule === 'gla' || c.rule === 'gated-delta';
      const usesBeta = c.rule === 'delta' || c.rule === 'gated-delta';
      const routing = lines[c.T + 1].routing as { memory: number; tokens: number[]; totalWeight: number }[];
      expect(routing.map((m) => m.memory)).toEqual(Array.from({ length: c.E }, (_, e) => e));
      // The last state each memory reached, to check that unselected memories do not move.
      const last = new Map<number, number[][]>();
      lines.slice(1, c.T + 1).forEach((ev, t) => {
        expect(ev.unchanged.sort()).toEqual(Array.from({ length: c.E }, (_, e) => e).filter((e) => !ev.selected.includes(e)));
        for (const e of ev.selected) expect(routing[e].tokens).toContain(t);
        for (const m of ev.memories) {
          if (last.has(m.index)) expect(m.stateBefore).toEqual(last.get(m.index));
          else expect(m.stateBefore.flat().every((x: number) => x === 0)).toBe(true);
          last.set(m.index, m.stateAfter);
        }
        expect(ev.t).toBe(t);
        expect(isVector(ev.logits, c.E) && isVector(ev.probs, c.E) && isVector(ev.q, c.dk)).toBe(true);
        expect(ev.probs.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 12);
        expect(ev.selected.length).toBe(c.k);
        expect(new Set(ev.selected).size).toBe(c.k);
        expect(ev.weights.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 12);
        // selected is ordered by descending probability
        for (let j = 1; j < c.k; j++) expect(ev.probs[ev.selected[j - 1]]).toBeGreaterThanOrEqual(ev.probs[ev.selected[j]]);

        const blocks = [...ev.memories, ...(ev.shared ? [ev.shared] : [])];
        expect(ev.memories.map((m: { index: number }) => m.index)).toEqual(ev.selected);
        expect(ev.shared === null).toBe(!c.shared);
        if (ev.shared) expect('index' in ev.shared).toBe(false);
        for (const m of blocks) {
          // The intermediates add up: the (decayed) state plus the write is the state after.
          const parts = Object.fromEntries(m.steps.map((p: { name: string; value: unknown }) => [p.name, p.value]));
          const base = (parts['S̄'] ?? m.stateBefore) as number[][];
          const write = parts.write as number[][];
          base.forEach((row, i) => row.forEach((x, j) => expect(x + write[i][j]).toBeCloseTo(m.stateAfter[i][j], 12)));
          if (usesBeta) (parts.error as number[]).forEach((e, j) => expect(e).toBeCloseTo(m.v[j] - (parts.prediction as number[])[j], 14));
          expect(isVector(m.k, c.dk) && isVector(m.v, c.dv) && isVector(m.output, c.dv)).toBe(true);
          expect(isMatrix(m.stateBefore, c.dk, c.dv) && isMatrix(m.stateAfter, c.dk, c.dv)).toBe(true);
          if (!usesG) expect(m.g).toBeNull();
          else if (c.rule === 'gla') expect(isVector(m.g, c.dk)).toBe(true);
          else expect(m.g).toBeLessThanOrEqual(0);
          if (usesBeta) expect(m.beta > 0 && m.beta < 1).toBe(true);
          else expect(m.beta).toBeNull();
        }
        expect(isVector(ev.outputMixAfter, c.dv) && isVector(ev.outputMixBefore, c.dv)).toBe(true);
        for (let j = 0; j < c.dv; j++) expect(Math.abs(ev.outputMixAfter[j] - ev.outputMixBefore[j])).toBeLessThanOrEqual(MIX_TOL);
      });
    }),
  );

  it('covers every built-in rule', () => {
    expect(new Set(CASES.map((c) => c.rule))).toEqual(new Set(RULE_NAMES));
  });
});

describe('momlab trace keeps its beginning, and takes rule files', () => {
  it('token t is the same whatever --tokens is', async () => {
    const trace = async (T: number) => (await inProcess('trace', '--json', '--tokens', `${T}`, '--seed', '77', '--memories', '3')).stdout.trim().split('\n').map((l) => JSON.parse(l));
    const short = await trace(3);
    const long = await trace(7);
    for (let t = 0; t < 3; t++) expect(long[1 + t]).toEqual(short[1 + t]);
  });

  it('runs a rule file, showing its own update lines as the formula', async () => {
    const r = await inProcess('trace', '--rule', 'rules/titans.rule', '--tokens', '2', '--dk', '2', '--dv', '2');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/rule titans/);
    expect(r.stdout).toMatch(/let err = S' \* k - v;  update S = exp\(g\) \* S - theta \* k \* err'/);
    expect(r.stdout).toMatch(/theta/);
  });
});

describe('momlab trace for people, and its errors', () => {
  it('prints each token with states side by side and both read-outs', () => {
    const r = momlab('trace', '--tokens', '2', '--dk', '2', '--dv', '3');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/rule gated-delta, 4 memories, top-2, shared memory on/);
    expect(r.stdout.match(/── token \d/g)).toEqual(['── token 0', '── token 1']);
    expect(r.stdout).toMatch(/state before +state after/);
    expect(r.stdout).toMatch(/mix after .* mix before/);
    expect(r.stdout).toMatch(/max \|after − before\| = /);
    expect(r.stdout).toMatch(/S̄ = α S;  S' = S̄ \+ β k \(v − S̄ᵀk\)ᵀ/);
    expect(r.stdout).toMatch(/prediction \(what the memory recalls for k: S̄ᵀk\)/);
    expect(r.stdout).toMatch(/error \(v − prediction\)/);
    expect(r.stdout).toMatch(/not selected: memories \d, \d: unchanged/);
    expect(r.stdout).toMatch(/── routing over 2 tokens/);
  });

  it('a bad flag exits non-zero with a message that names it', async () => {
    const cases: [string[], RegExp][] = [
      [['--bogus'], /unknown option --bogus/],
      [['--rule', 'nope'], /unknown rule 'nope'/],
      [['--topk', '5', '--memories', '4'], /--topk 5 is more than --memories 4/],
      [['--dk', '0'], /--dk must be a positive integer, got 0/],
      [['--tokens', 'many'], /--tokens needs a number, got 'many'/],
      [['--seed'], /--seed needs a value/],
    ];
    for (const [i, [args, message]] of cases.entries()) {
      const r = i === 0 ? momlab('trace', ...args) : await inProcess('trace', ...args);
      expect(r.status, args.join(' ')).not.toBe(0);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
    }
  });
});
