/**
 * A built-in rule on the GPU: its token-by-token snippets (recurrent-template.ts) and its
 * chunkwise form (chunk-template.ts), behind the `GpuRule.encode` of gpu/kernels/types.ts.
 * Inputs, names and order are taken from the reference rule, so both sides cannot drift apart.
 */
import { ConfigError } from '../../reference/errors.js';
import type { BuiltinRule } from '../../reference/rules/types.js';
import { makeChunkEncoder, type ChunkForm } from './chunk-template.js';
import { makeRecurrentEncoder, type RecurrentBody } from './recurrent-template.js';
import { CHUNK_SIZES, type GpuRule, type KernelMode } from './types.js';

export function makeBuiltinGpuRule(ref: BuiltinRule, body: RecurrentBody, form: ChunkForm): GpuRule {
  const recurrent = makeRecurrentEncoder({ name: ref.name, inputs: ref.inputs, body });
  const chunk = makeChunkEncoder({ name: ref.name, inputs: ref.inputs, form });
  const modes: readonly KernelMode[] = ['chunk', 'recurrent'];
  return {
    name: ref.name,
    inputs: ref.inputs,
    readLinear: ref.readLinear,
    modes,
    encode(ctx, enc, dims, buffers, opts) {
      if (opts.mode === 'recurrent') return recurrent(ctx, enc, dims, buffers);
      if (opts.mode !== 'chunk') throw new ConfigError(`rule '${ref.name}': unknown kernel mode '${String(opts.mode)}'; modes: ${modes.join(', ')}`);
      const C = opts.chunk ?? 64;
      if (!(CHUNK_SIZES as readonly number[]).includes(C)) {
        throw new ConfigError(`rule '${ref.name}': chunk size ${C} is not supported; use one of ${CHUNK_SIZES.join(', ')}`);
      }
      if (buffers.history) {
        throw new ConfigError(`rule '${ref.name}': the per-token state history (mix before) needs mode 'recurrent', not 'chunk'`);
      }
      chunk(ctx, enc, dims, buffers, C);
    },
  };
}
