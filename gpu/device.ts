/**
 * One WebGPU device for the process, in Node (the `webgpu` package, Dawn) or in a browser
 * (`navigator.gpu`), with the same code otherwise. Errors are typed (GpuError) and name the
 * problem: no adapter, a lost device, a shader or validation error, a size over a limit.
 */
// Kept in the emitted .d.ts, so that users of the compiled package get the GPU* types without setting them up.
/// <reference types="@webgpu/types" preserve="true" />
import { GpuError } from '../reference/errors.js';

export interface GpuContext {
  device: GPUDevice;
  adapterInfo: string;
  limits: GPUSupportedLimits;
  features: ReadonlySet<string>;
  /**
   * Compile once per device: pipelines are cached by their WGSL text and entry point. If the WGSL
   * does not compile, the error that surfaces (withErrorScope, checkHealthy) carries the
   * compiler's messages, each followed by `origin(line)` when given (e.g. the rule line it came from).
   */
  pipeline(label: string, code: string, entryPoint?: string, origin?: WgslOrigin): GPUComputePipeline;
  /** Number of buffers created through createBuffer() since the context was made (decode tests count them). */
  readonly buffersCreated: number;
  createBuffer(desc: GPUBufferDescriptor): GPUBuffer;
  /** Throws GpuError if the device was lost or an uncaptured error happened since the last call. */
  checkHealthy(): void;
}

/** Where a line of generated WGSL came from (1-based WGSL line), or null when unknown. */
export type WgslOrigin = (wgslLine: number) => string | null;

// Limits the kernels may use; asked for up to what the adapter offers.
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupsPerDimension',
] as const;

let pending: Promise<GpuContext> | null = null;

/** The process-wide context; the first call requests the adapter and device. */
export function getGpu(): Promise<GpuContext> {
  pending ??= createContext().catch((e) => {
    pending = null;
    throw e;
  });
  return pending;
}

async function getNavigatorGpu(): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  // Node: Dawn through the `webgpu` package. Keep the instance alive on globalThis for the whole
  // process: if it is garbage-collected, the next mapAsync segfaults.
  const g = globalThis as { __momlabGpu?: GPU };
  if (!g.__momlabGpu) {
    process.env.XDG_RUNTIME_DIR ??= '/tmp';
    let mod: { create: (o: string[]) => GPU; globals: Record<string, unknown> };
    try {
      mod = (await import('webgpu')) as never;
    } catch (e) {
      throw new GpuError(`cannot load the 'webgpu' package (Dawn): ${(e as Error).message}; run npm install`);
    }
    Object.assign(globalThis, mod.globals);
    // Timestamps are quantised to 65 us unless this toggle is off (benchmarks need them exact).
    // MOMLAB_DAWN_ENABLE adds Dawn toggles (comma-separated), for benchmark experiments only.
    const extra = process.env.MOMLAB_DAWN_ENABLE;
    g.__momlabGpu = mod.create(['disable-dawn-features=timestamp_quantization', ...(extra ? [`enable-dawn-features=${extra}`] : [])]);
  }
  return g.__momlabGpu;
}

async function createContext(): Promise<GpuContext> {
  const gpu = await getNavigatorGpu();
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new GpuError(
      'no WebGPU adapter found. On Debian bookworm run `bash scripts/ensure.sh` as root (it installs ' +
        "Mesa's lavapipe from bookworm-backports); elsewhere install a Vulkan driver (mesa-vulkan-drivers " +
        'libvulkan1, or your GPU vendor\'s) and set XDG_RUNTIME_DIR.',
    );
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  const requiredFeatures = (['timestamp-query', 'subgroups'] as GPUFeatureName[]).filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const info = adapter.info;
  const adapterInfo = [info?.vendor, info?.architecture, info?.device, info?.description].filter(Boolean).join(' ') || 'unknown adapter';

  let lostReason: string | null = null;
  void device.lost.then((i) => {
    lostReason = `${i.reason}: ${i.message}`;
  });
  let uncaptured: string | null = null;
  device.addEventListener('uncapturederror', (ev) => {
    uncaptured ??= (ev as GPUUncapturedErrorEvent).error.message;
  });

  const cache = new Map<string, GPUComputePipeline>();
  // Compiler messages arrive asynchronously; they are awaited only once an error has surfaced, so
  // a pipeline lookup never waits. Failed modules are kept by label (Dawn's errors quote labels).
  const compileChecks = new Set<Promise<void>>();
  const compileFailures = new Map<string, string>();
  const explain = (message: string) => [...compileFailures].find(([label]) => message.includes(`"${label}"`))?.[1] ?? message;
  let created = 0;
  const ctx: GpuContext = {
    device,
    adapterInfo,
    limits: device.limits,
    features: device.features as unknown as ReadonlySet<string>,
    get buffersCreated() {
      return created;
    },
    createBuffer(desc) {
      const max = device.limits.maxBufferSize;
      if (desc.size > max) {
        throw new GpuError(`buffer '${desc.label ?? '?'}' of ${desc.size} bytes is over the device limit maxBufferSize = ${max}`);
      }
      created++;
      return device.createBuffer(desc);
    },
    pipeline(label, code, entryPoint = 'main', origin) {
      const key = `${entryPoint}\n${code}`;
      let p = cache.get(key);
      if (!p) {
        const module = device.createShaderModule({ label, code });
        p = device.createComputePipeline({ label, layout: 'auto', compute: { module, entryPoint } });
        cache.set(key, p);
        const check = module.getCompilationInfo().then(
          (info) => {
            const errors = info.messages.filter((m) => m.type === 'error');
            if (errors.length) compileFailures.set(label, compileMessage(label, errors, origin));
          },
          () => undefined,
        );
        compileChecks.add(check);
        void check.then(() => compileChecks.delete(check));
      }
      return p;
    },
    checkHealthy() {
      if (lostReason) throw new GpuError(`the WebGPU device was lost (${lostReason})`);
      if (uncaptured) {
        const m = uncaptured;
        uncaptured = null;
        throw new GpuError(`WebGPU error: ${explain(m)}`);
      }
    },
  };
  explainers.set(ctx, async (message) => {
    await Promise.all(compileChecks);
    return explain(message);
  });
  return ctx;
}

/** Per context: an error message, replaced by the compiler's messages when it is about a failed compile. */
const explainers = new WeakMap<GpuContext, (message: string) => Promise<string>>();

function compileMessage(label: string, errors: readonly GPUCompilationMessage[], origin: WgslOrigin | undefined): string {
  const lines = errors.map((m) => {
    const from = origin?.(m.lineNum);
    return `${m.lineNum}:${m.linePos}: ${m.message}${from ? `\n${from}` : ''}`;
  });
  return `the WGSL of '${label}' does not compile:\n${lines.join('\n')}`;
}

/**
 * Run `fn` inside validation and out-of-memory error scopes and turn any captured error into a
 * GpuError that names `what`. Compilation errors in WGSL surface here with their line numbers.
 */
export async function withErrorScope<T>(ctx: GpuContext, what: string, fn: () => T): Promise<T> {
  const { device } = ctx;
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let result: T;
  try {
    result = fn();
  } finally {
    const validation = await device.popErrorScope();
    const oom = await device.popErrorScope();
    const err = validation ?? oom;
    if (err) throw new GpuError(`${what}: ${(await explainers.get(ctx)?.(err.message)) ?? err.message}`);
  }
  ctx.checkHealthy();
  return result!;
}
