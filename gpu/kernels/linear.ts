/** docs/spec.md §3, `linear`: S' = S + k vᵀ, on the GPU (mirrors reference/rules/linear.ts). */
import { linear as ref } from '../../reference/rules/linear.js';
import { makeBuiltinGpuRule } from './builtin.js';
import { READ_STATE_T_Q } from './recurrent-template.js';

export const linear = makeBuiltinGpuRule(
  ref,
  {
    update: 'let vj = v(j); for (var i = 0u; i < DK; i++) { s[i] += k(i) * vj; }',
    read: READ_STATE_T_Q,
  },
  { decay: 'none', delta: false },
);
