/**
 * Canaries after every rule kernel. `readback` (gpu/buffers.ts) checks the canary of the
 * buffers it reads, but a forward reads back only its final o and state: the rule kernel's own
 * outputs (the gathered o and, for mix before, the state history) are never read, so an
 * out-of-bounds write there would go unseen. `probeCanaries` wraps a GpuRule so that, right
 * after the rule's kernels are recorded, the canary words after each of its output buffers (o,
 * state, history) are copied to small staging buffers; `verify()` then checks them all.
 * The staging buffers come from device.createBuffer, not ctx.createBuffer, so they do not count
 * as the pipeline's allocations (decode's "a step allocates nothing" stays measurable).
 */
import { CANARY_BITS, CANARY_WORDS, Usage } from '../gpu/buffers.js';
import type { GpuContext } from '../gpu/device.js';
import type { GpuRule } from '../gpu/kernels/types.js';
import { gpuMomForward } from '../gpu/mom.js';
import { GpuError } from '../reference/errors.js';

export interface ProbedRule {
  rule: GpuRule;
  /** throws GpuError naming the buffer when a canary was overwritten; frees the probes */
  verify(): Promise<void>;
}

export function probeCanaries(ctx: GpuContext, inner: GpuRule): ProbedRule {
  const probes: { what: string; buf: GPUBuffer }[] = [];
  const rule: GpuRule = {
    name: inner.name,
    inputs: inner.inputs,
    readLinear: inner.readLinear,
    modes: inner.modes,
    encode(c, enc, dims, buffers, opts) {
      inner.encode(c, enc, dims, buffers, opts);
      const { segments, positions, H, dk, dv } = dims;
      const outs: [string, GPUBuffer | undefined, number][] = [
        ['o', buffers.o, positions * H * dv],
        ['state', buffers.state, segments * H * dk * dv],
        ['history', buffers.history, positions * H * dk * dv],
      ];
      for (const [name, buf, words] of outs) {
        if (!buf) continue;
        const probe = ctx.device.createBuffer({ label: `canary probe ${name}`, size: CANARY_WORDS * 4, usage: Usage.MAP_READ | Usage.COPY_DST });
        enc.copyBufferToBuffer(buf, words * 4, probe, 0, CANARY_WORDS * 4);
        probes.push({ what: `${inner.name} ${opts.mode}${opts.chunk ? ` ${opts.chunk}` : ''} kernel, buffer '${name}' (${words} words)`, buf: probe });
      }
    },
  };
  return {
    rule,
    async verify() {
      const all = probes.splice(0);
      try {
        for (const p of all) {
          await p.buf.mapAsync(0x1);
          const u = new Uint32Array(p.buf.getMappedRange().slice(0));
          p.buf.unmap();
          const bad = u.findIndex((w) => w !== CANARY_BITS);
          if (bad >= 0) throw new GpuError(`canary overwritten after the ${p.what}, ${bad} words past its end: a kernel wrote out of bounds`);
        }
      } finally {
        all.forEach((p) => p.buf.destroy());
      }
    },
  };
}

/** gpuMomForward with the rule kernel's canaries checked too (every GPU property uses it). */
export async function checkedForward(...args: Parameters<typeof gpuMomForward>): ReturnType<typeof gpuMomForward> {
  const [ctx, rule, cfg, x, opts] = args;
  const probed = probeCanaries(ctx, rule);
  const out = await gpuMomForward(ctx, probed.rule, cfg, x, opts);
  await probed.verify();
  return out;
}
