/**
 * Canaries after every kernel of a forward: a rule kernel that writes one word past its output
 * must make gpuMomForward fail, naming the buffer (ForwardPlan.verifyCanaries).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { getGpu, type GpuContext } from '../gpu/device.js';
import { getGpuRule } from '../gpu/kernels/index.js';
import type { GpuRule } from '../gpu/kernels/types.js';
import { gpuMomForward } from '../gpu/mom.js';
import { getRule } from '../reference/rules/index.js';
import { sampleCoreInputs } from '../reference/sample.js';
import type { CoreConfig } from '../reference/types.js';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await getGpu();
});

/** `inner`, followed by one thread that writes the word just past the gathered o. */
function overrunning(inner: GpuRule): GpuRule {
  return {
    ...inner,
    encode(c, enc, dims, buffers, opts) {
      inner.encode(c, enc, dims, buffers, opts);
      const end = dims.positions * dims.H * dims.dv;
      const p = c.pipeline('overrun o', /* wgsl */ `
        @group(0) @binding(0) var<storage, read_write> o: array<f32>;
        @compute @workgroup_size(1) fn main() { o[${end}u] = 1.0; }`);
      const pass = enc.beginComputePass();
      pass.setPipeline(p);
      pass.setBindGroup(0, c.device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buffers.o } }] }));
      pass.dispatchWorkgroups(1);
      pass.end();
    },
  };
}

describe('canaries in a forward', () => {
  const cfg: CoreConfig = { B: 2, T: 7, H: 2, E: 3, topk: 2, dk: 4, dv: 4, shared: true };
  const x = sampleCoreInputs(getRule('linear'), cfg, 5);

  it('a clean forward passes its canary check', async () => {
    const r = await gpuMomForward(ctx, getGpuRule('linear'), cfg, x, { mode: 'recurrent' });
    expect(r.o.length).toBe(cfg.B * cfg.T * cfg.H * cfg.dv);
  });

  it('an out-of-bounds write in the rule kernel is an error naming the buffer', async () => {
    await expect(gpuMomForward(ctx, overrunning(getGpuRule('linear')), cfg, x, { mode: 'recurrent' })).rejects.toThrow(
      /canary overwritten after buffer 'gathered o'/,
    );
  });
});
