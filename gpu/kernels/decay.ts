/** docs/spec.md §3, `decay`: S' = e^g S + k vᵀ with one log-decay g per token (mirrors reference/rules/decay.ts). */
import { decay as ref } from '../../reference/rules/decay.js';
import { makeBuiltinGpuRule } from './builtin.js';
import { READ_STATE_T_Q } from './recurrent-template.js';

export const decay = makeBuiltinGpuRule(
  ref,
  {
    update: 'let a = exp(g); let vj = v(j); for (var i = 0u; i < DK; i++) { s[i] = a * s[i] + k(i) * vj; }',
    read: READ_STATE_T_Q,
  },
  { decay: 'scalar', delta: false },
);
