/**
 * Host side of the GPU backward kernel (gpu/kernels/backward.ts): upload a segment problem
 * (reference/backward/segments.ts), run the kernel once, read the gradients back (float32 on the
 * GPU, returned as float64 arrays in the reference's layouts).
 */
import type { SegmentGradients, SegmentProblem } from '../reference/backward/segments.js';
import { widthOf } from '../reference/types.js';
import { outputBuffer, readback, scratchBuffer, upload } from './buffers.js';
import { withErrorScope, type GpuContext } from './device.js';
import type { GpuRuleBackward } from './kernels/backward.js';

export async function gpuSegmentBackward(ctx: GpuContext, kernel: GpuRuleBackward, p: SegmentProblem): Promise<SegmentGradients> {
  const { H, dk, dv } = p;
  const S = p.cu.length - 1;
  const P = p.cu[S];
  const widths = kernel.inputs.map((d) => widthOf(d.width, p));
  const W = widths.reduce((a, w) => a + w, 0);
  const buffers = {
    cu: upload(ctx, 'cu', p.cu),
    q: upload(ctx, 'q', p.q),
    inputs: p.inputs.map((x, n) => upload(ctx, `input ${n}`, x)),
    state: upload(ctx, 'state', p.state),
    do: upload(ctx, 'do', p.do),
    dstate: outputBuffer(ctx, 'dstate', S * H * dk * dv, Float32Array.from(p.dfinal)),
    dq: outputBuffer(ctx, 'dq', P * H * dk),
    dx: outputBuffer(ctx, 'dx', P * H * W),
    hist: scratchBuffer(ctx, 'hist', P * H * dk * dv),
  };
  await withErrorScope(ctx, `rule '${kernel.name}' backward`, () => {
    const enc = ctx.device.createCommandEncoder();
    kernel.encode(ctx, enc, { segments: S, positions: P, H, dk, dv }, buffers);
    ctx.device.queue.submit([enc.finish()]);
  });
  const dq = Float64Array.from(await readback(ctx, buffers.dq, P * H * dk));
  const dstate = Float64Array.from(await readback(ctx, buffers.dstate, S * H * dk * dv));
  const dx = await readback(ctx, buffers.dx, P * H * W);
  const offsets = widths.map((_, n) => widths.slice(0, n).reduce((a, w) => a + w, 0));
  const dinputs = widths.map((w, n) => {
    const out = new Float64Array(P * H * w);
    for (let row = 0; row < P * H; row++) for (let c = 0; c < w; c++) out[row * w + c] = dx[row * W + offsets[n] + c];
    return out;
  });
  for (const b of [buffers.cu, buffers.q, ...buffers.inputs, buffers.state, buffers.do, buffers.dstate, buffers.dq, buffers.dx, buffers.hist]) b.destroy();
  return { dq, dinputs, dstate };
}
