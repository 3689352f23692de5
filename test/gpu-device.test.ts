import { beforeAll, describe, expect, it } from 'vitest';
import { getGpu, type GpuContext } from '../gpu/device.js';
import { outputBuffer, readback, upload, uniforms } from '../gpu/buffers.js';
import { GpuError } from '../reference/errors.js';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await getGpu();
});

describe('gpu device', () => {
  it('runs a kernel and keeps the canary', async () => {
    const n = 37;
    const x = Float32Array.from({ length: n }, (_, i) => i * 0.5 - 3);
    const inp = upload(ctx, 'x', x);
    const out = outputBuffer(ctx, 'y', n);
    const u = uniforms(ctx, 'u', [n]);
    const p = ctx.pipeline('double', /* wgsl */ `
      @group(0) @binding(0) var<storage, read> x: array<f32>;
      @group(0) @binding(1) var<storage, read_write> y: array<f32>;
      @group(0) @binding(2) var<uniform> n: vec4<u32>;
      @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
        if (id.x < n.x) { y[id.x] = 2.0 * x[id.x]; }
      }`);
    const bg = ctx.device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [inp, out, u].map((buffer, binding) => ({ binding, resource: { buffer } })) });
    const enc = ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(p);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(1);
    pass.end();
    ctx.device.queue.submit([enc.finish()]);
    const y = await readback(ctx, out, n);
    expect(Array.from(y)).toEqual(Array.from(x, (v) => 2 * v));
  });

  it('detects an out-of-bounds write through the canary', async () => {
    const n = 8;
    const out = outputBuffer(ctx, 'victim', n);
    const p = ctx.pipeline('overrun', /* wgsl */ `
      @group(0) @binding(0) var<storage, read_write> y: array<f32>;
      @compute @workgroup_size(16) fn main(@builtin(global_invocation_id) id: vec3<u32>) { y[id.x] = 1.0; }`);
    const bg = ctx.device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: out } }] });
    const enc = ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(p);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(1);
    pass.end();
    ctx.device.queue.submit([enc.finish()]);
    await expect(readback(ctx, out, n)).rejects.toThrow(/canary overwritten after buffer 'victim'/);
  });

  it('refuses a buffer over the device limit, naming the limit', () => {
    const words = ctx.limits.maxStorageBufferBindingSize / 4 + 1;
    expect(() => outputBuffer(ctx, 'huge', words)).toThrow(GpuError);
    expect(() => outputBuffer(ctx, 'huge', words)).toThrow(/maxStorageBufferBindingSize/);
  });
});
