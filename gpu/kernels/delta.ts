/** docs/spec.md §3, `delta` (DeltaNet): S' = S + β k (v − Sᵀk)ᵀ (mirrors reference/rules/delta.ts). */
import { delta as ref } from '../../reference/rules/delta.js';
import { makeBuiltinGpuRule } from './builtin.js';
import { READ_STATE_T_Q } from './recurrent-template.js';

export const delta = makeBuiltinGpuRule(
  ref,
  {
    // Column j: u = β (v_j − S[:, j]·k), then S[:, j] += u k.
    update: `var kv = 0.0;
        for (var i = 0u; i < DK; i++) { kv += s[i] * k(i); }
        let u = beta * (v(j) - kv);
        for (var i = 0u; i < DK; i++) { s[i] += k(i) * u; }`,
    read: READ_STATE_T_Q,
  },
  { decay: 'none', delta: true },
);
