/**
 * The adapter and the dispatch timer of the tensor-core probes (bench/tensor-cores.ts,
 * bench/tensor-chunk-products.ts). They make a device of their own rather than momlab's
 * GpuContext: the subgroup matrix feature is experimental and needs Dawn's allow_unsafe_apis.
 */

/**
 * An adapter from a Dawn instance with allow_unsafe_apis (and MOMLAB_DAWN_ENABLE's toggles,
 * comma-separated, as in gpu/device.ts). The instance is kept alive on globalThis: if it is
 * garbage-collected, the next mapAsync crashes the process.
 */
export async function unsafeApisAdapter(): Promise<{ adapter: GPUAdapter; toggles: string[] }> {
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  const mod = (await import('webgpu')) as unknown as { create: (o: string[]) => GPU; globals: Record<string, unknown> };
  Object.assign(globalThis, mod.globals);
  const toggles = ['allow_unsafe_apis', ...(process.env.MOMLAB_DAWN_ENABLE ?? '').split(',').filter(Boolean)];
  const gpu = mod.create(['disable-dawn-features=timestamp_quantization', `enable-dawn-features=${toggles.join(',')}`]);
  (globalThis as { __momlabProbeGpus?: GPU[] }).__momlabProbeGpus = [...((globalThis as { __momlabProbeGpus?: GPU[] }).__momlabProbeGpus ?? []), gpu];
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no WebGPU adapter');
  return { adapter, toggles };
}

/**
 * Device time of one dispatch: 300 ms of back-to-back submits first (the clocks), then 15 timed
 * submits, each bracketed by the pass's own timestamps.
 */
export async function timeDispatch(device: GPUDevice, pipe: GPUComputePipeline, bg: GPUBindGroup, groups: [number, number]): Promise<number[]> {
  const qs = device.createQuerySet({ type: 'timestamp', count: 2 });
  const qb = device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const qr = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encodeOne = (enc: GPUCommandEncoder, timed: boolean) => {
    const pass = enc.beginComputePass(timed ? { timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : {});
    pass.setPipeline(pipe);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(groups[0], groups[1]);
    pass.end();
  };
  // busy warm-up (clocks): back-to-back submits for about 300 ms of wall clock
  const t0 = performance.now();
  while (performance.now() - t0 < 300) {
    const enc = device.createCommandEncoder();
    for (let i = 0; i < 4; i++) encodeOne(enc, false);
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
  }
  const times: number[] = [];
  for (let rep = 0; rep < 15; rep++) {
    const enc = device.createCommandEncoder();
    encodeOne(enc, true);
    enc.resolveQuerySet(qs, 0, 2, qb, 0);
    enc.copyBufferToBuffer(qb, 0, qr, 0, 16);
    device.queue.submit([enc.finish()]);
    await qr.mapAsync(GPUMapMode.READ);
    const t = new BigInt64Array(qr.getMappedRange().slice(0));
    qr.unmap();
    times.push(Number(t[1] - t[0]) / 1e6);
  }
  return times;
}
