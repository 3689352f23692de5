/**
 * Which GPU kernel a case runs: token by token, or chunked with one of the chunk sizes. Drawn
 * from the modes the rule's kernels offer (text rules have 'recurrent' only).
 */
import fc from 'fast-check';
import type { ForwardOptions } from '../gpu/mom.js';
import type { GpuRule } from '../gpu/kernels/types.js';

export type GpuMode = 'recurrent' | 'chunk16' | 'chunk32' | 'chunk64';

export function gpuModeArb(rule: GpuRule): fc.Arbitrary<GpuMode> {
  return rule.modes.includes('chunk') ? fc.constantFrom<GpuMode>('recurrent', 'chunk16', 'chunk32', 'chunk64') : fc.constant('recurrent');
}

export function forwardMode(m: GpuMode): Pick<ForwardOptions, 'mode' | 'chunk'> {
  return m === 'recurrent' ? { mode: 'recurrent' } : { mode: 'chunk', chunk: Number(m.slice(5)) as 16 | 32 | 64 };
}
