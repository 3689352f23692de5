// A user's own suite against the installed package (run by scripts/pack-check.sh in a fresh
// project): a rule defined here, checked with the public properties through assertProperty.
import { assertProperty, gatheredEqualsDirect, refDecodeEqualsForward, refMixBeforeEqualsAfter, refStateSizeConstant, type RuleTarget } from 'momlab/properties';
import { getRule, type Dims, type Rule, type TokenInputs } from 'momlab/reference';
import { describe, expect, it } from 'vitest';

/** S' = e^g S + β k vᵀ: a decayed, gated outer product, read out as o = Sᵀq. */
function gatedHebbian(read: Rule['read'], readLinear: boolean): Rule {
  return {
    name: 'gated-hebbian',
    inputs: [
      { name: 'k', width: 'dk', range: 'normalized' },
      { name: 'v', width: 'dv', range: 'free' },
      { name: 'g', width: 'scalar', range: 'logdecay' },
      { name: 'beta', width: 'scalar', range: 'unit' },
    ],
    readLinear,
    step(S: Float64Array, x: TokenInputs, { dk, dv }: Dims) {
      const k = x.k as Float64Array, v = x.v as Float64Array;
      const alpha = Math.exp(x.g as number), beta = x.beta as number;
      for (let i = 0; i < dk; i++) for (let j = 0; j < dv; j++) S[i * dv + j] = alpha * S[i * dv + j] + beta * k[i] * v[j];
    },
    read,
  };
}

const linearRead = getRule('linear').read;
const target: RuleTarget = { name: 'gated-hebbian', ref: gatedHebbian(linearRead, true) };

describe('a user-defined rule through momlab/properties', () => {
  for (const prop of [gatheredEqualsDirect, refMixBeforeEqualsAfter, refStateSizeConstant, refDecodeEqualsForward])
    it(prop.id, async () => {
      const rep = await assertProperty(prop, [target], {}, { numRuns: 30, file: 'user-rule.spec.ts' });
      expect(rep.cases).toBe(30);
    });

  it('fails, with a replay command, on a rule whose read-out is not linear but claims to be', async () => {
    const tanhRead: Rule['read'] = (S, q, dims, out) => {
      linearRead(S, q, dims, out);
      for (let j = 0; j < dims.dv; j++) out[j] = Math.tanh(3 * out[j]);
    };
    const wrong: RuleTarget = { name: 'gated-hebbian-tanh', ref: gatedHebbian(tanhRead, true) };
    await expect(assertProperty(refMixBeforeEqualsAfter, [wrong], {}, { numRuns: 30, file: 'user-rule.spec.ts' })).rejects.toThrow(/MOMLAB_SEED=-?\d+ MOMLAB_PATH=\S+ npx vitest run user-rule.spec.ts/);
  });
});
