/**
 * Dispatch grids for element-wise kernels. One dimension holds at most
 * maxComputeWorkgroupsPerDimension workgroups (65535 on most devices), which a forward of
 * B*T*H*dv elements overflows quickly; so the workgroups are laid out on a 2-D grid and the
 * kernel rebuilds a linear id. A problem too large even for that is refused, naming the limit.
 */
import { GpuError } from '../reference/errors.js';

export interface Grid {
  x: number;
  y: number;
}

/** The grid for `count` workgroups (at least one, so a kernel always runs its bounds check). */
export function gridFor(limits: GPUSupportedLimits, count: number, what: string): Grid {
  const max = limits.maxComputeWorkgroupsPerDimension;
  const n = Math.max(1, count);
  if (n <= max) return { x: n, y: 1 };
  const y = Math.ceil(n / max);
  if (y > max) {
    throw new GpuError(`${what} needs ${n} workgroups, over maxComputeWorkgroupsPerDimension = ${max} squared`);
  }
  return { x: max, y };
}

/** The grid for `threads` invocations in workgroups of `size`. */
export function threadGrid(limits: GPUSupportedLimits, threads: number, size: number, what: string): Grid {
  return gridFor(limits, Math.ceil(threads / size), what);
}

/** WGSL: the linear workgroup index on such a grid (needs `wg` and `nwg` builtins in scope). */
export const LINEAR_WORKGROUP = 'wg.y * nwg.x + wg.x';

export function dispatch(pass: GPUComputePassEncoder, g: Grid): void {
  pass.dispatchWorkgroups(g.x, g.y);
}

/**
 * A kernel compiled and bound once (bind groups and uniforms made up front, so that decode
 * steps allocate nothing): `encode` records its dispatches, `owned` are the buffers it made.
 */
export interface Prepared {
  encode(pass: GPUComputePassEncoder): void;
  owned: GPUBuffer[];
}

/** Bind `buffers` to bindings 0.. of group 0. */
export function bindAll(device: GPUDevice, label: string, pipeline: GPUComputePipeline, buffers: GPUBuffer[]): GPUBindGroup {
  return device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
}

/** One pipeline, one bind group, one grid. */
export function simpleKernel(pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, grid: Grid, owned: GPUBuffer[]): Prepared {
  return {
    owned,
    encode(pass) {
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      dispatch(pass, grid);
    },
  };
}
