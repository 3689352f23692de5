/**
 * docs/spec.md §3, `gated-delta` (Gated DeltaNet): S̄ = α S;  S' = S̄ + β k (v − S̄ᵀk)ᵀ, α = e^g
 * (mirrors reference/rules/gated-delta.ts).
 */
import { gatedDelta as ref } from '../../reference/rules/gated-delta.js';
import { makeBuiltinGpuRule } from './builtin.js';

export const gatedDelta = makeBuiltinGpuRule(
  ref,
  {
    // Column j, two passes over it: u = β (v_j − α S[:, j]·k) (S̄ is never formed), then
    // S[:, j] = α S[:, j] + u k with the read-out riding along the second pass.
    update: `let a = exp(g);
        var kv = 0.0;
        for (var i = 0u; i < DK; i++) { kv += s[i] * k(i); }
        let u = beta * (v(j) - a * kv);
        var qs = 0.0;
        for (var i = 0u; i < DK; i++) { let x = a * s[i] + k(i) * u; s[i] = x; qs += x * q(i); }`,
    read: 'o = qs;',
  },
  { decay: 'scalar', delta: true },
);
