/** docs/spec.md §3, `gla`: S' = diag(e^g) S + k vᵀ with a log-decay per key channel (mirrors reference/rules/gla.ts). */
import { gla as ref } from '../../reference/rules/gla.js';
import { makeBuiltinGpuRule } from './builtin.js';
import { READ_STATE_T_Q } from './recurrent-template.js';

export const gla = makeBuiltinGpuRule(
  ref,
  {
    update: 'let vj = v(j); for (var i = 0u; i < DK; i++) { s[i] = exp(g(i)) * s[i] + k(i) * vj; }',
    read: READ_STATE_T_Q,
  },
  { decay: 'channel', delta: false },
);
