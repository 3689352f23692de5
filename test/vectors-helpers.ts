/** Shared by the vectors tests: momlab in-process, and a core vectors folder read back as reference inputs. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../src/cli/main.js';
import { parseSafetensors } from '../src/io/safetensors.js';
import type { CoreConfig, CoreInputs, CoreState, MemoryInputs, RouteMix } from '../reference/types.js';

/** A momlab command in-process (spawning costs seconds on the shared CI machine): exit code and output. */
export async function momlab(...args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const sink = { write: (s: string) => (out += s) };
  const code = await runCli(args, { stdout: sink, stderr: sink });
  return { code, out };
}

export interface CoreFolder {
  manifest: { core: CoreConfig & { rule: string; mix: RouteMix; initial_state: string; cu_seqlens?: number[]; inputs_per_memory: { name: string }[] } };
  inputs: Map<string, { shape: number[]; data: Float64Array }>;
  expected: Map<string, { shape: number[]; data: Float64Array }>;
  cfg: CoreConfig;
  x: CoreInputs;
  /** core.<prefix>.{e} (and .shared) stacked as a CoreState, or undefined when absent */
  state(prefix: string, from?: 'inputs' | 'expected'): CoreState | undefined;
  slots: string[];
}

export function readCoreFolder(dir: string): CoreFolder {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  const inputs = parseSafetensors(readFileSync(join(dir, 'inputs.safetensors'))).tensors;
  const expected = parseSafetensors(readFileSync(join(dir, 'expected.safetensors'))).tensors;
  const c = manifest.core;
  const cfg: CoreConfig = { B: c.B, T: c.T, H: c.H, E: c.E, topk: c.topk, dk: c.dk, dv: c.dv, shared: c.shared };
  const slots = [...Array.from({ length: cfg.E }, (_, e) => String(e)), ...(cfg.shared ? ['shared'] : [])];
  const names: string[] = c.inputs_per_memory.map((d: { name: string }) => d.name);
  const mem = (e: string): MemoryInputs => Object.fromEntries(names.map((n) => [n, inputs.get(`core.${n}.${e}`)!.data]));
  const x: CoreInputs = { q: inputs.get('core.q')!.data, logits: inputs.get('core.router_logits')!.data, memories: slots.slice(0, cfg.E).map(mem), shared: cfg.shared ? mem('shared') : null };
  const state = (prefix: string, from: 'inputs' | 'expected' = 'inputs'): CoreState | undefined => {
    const src = from === 'inputs' ? inputs : expected;
    if (!src.has(`core.${prefix}.0`)) return undefined;
    const parts = slots.map((e) => src.get(`core.${prefix}.${e}`)!.data);
    const routed = new Float64Array(cfg.E * parts[0].length);
    parts.slice(0, cfg.E).forEach((p, i) => routed.set(p, i * p.length));
    return { routed, shared: cfg.shared ? parts[cfg.E] : null };
  };
  return { manifest, inputs, expected, cfg, x, state, slots };
}
