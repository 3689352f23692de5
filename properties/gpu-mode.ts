/**
 * Which GPU kernel a case runs: token by token, or chunked with one of the chunk sizes. Drawn
 * from the modes the rule's kernels offer (text rules have 'recurrent' only).
 */
import fc from 'fast-check';
import type { GpuContext } from '../gpu/device.js';
import { checkForwardLimits, type ForwardOptions } from '../gpu/mom.js';
import type { GpuRule } from '../gpu/kernels/types.js';
import { GpuError } from '../reference/errors.js';
import type { CoreConfig } from '../reference/types.js';

export type GpuMode = 'recurrent' | 'chunk16' | 'chunk32' | 'chunk64';

export function gpuModeArb(rule: GpuRule): fc.Arbitrary<GpuMode> {
  return rule.modes.includes('chunk') ? fc.constantFrom<GpuMode>('recurrent', 'chunk16', 'chunk32', 'chunk64') : fc.constant('recurrent');
}

export function forwardMode(m: GpuMode): Pick<ForwardOptions, 'mode' | 'chunk'> {
  return m === 'recurrent' ? { mode: 'recurrent' } : { mode: 'chunk', chunk: Number(m.slice(5)) as 16 | 32 | 64 };
}

/**
 * Whether a forward of these sizes fits the device (gpu/mom.ts refuses it otherwise, naming the
 * limit — correct behaviour, not a property failure). At sizes 'large' the mix-before history
 * ([P, H, dk, dv]) can pass lavapipe's 128 MiB binding limit; such cases are skipped (fc.pre).
 */
export function fitsDevice(ctx: GpuContext, rule: GpuRule, cfg: CoreConfig, mix: 'after' | 'before' = 'after'): boolean {
  try {
    checkForwardLimits(ctx.limits, rule, cfg, mix);
    return true;
  } catch (e) {
    if (e instanceof GpuError) return false;
    throw e;
  }
}
