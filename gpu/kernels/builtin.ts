/**
 * A built-in rule on the GPU, behind the `GpuRule.encode` of gpu/kernels/types.ts: mode
 * 'recurrent' runs the fast token-by-token kernel (recurrent-fast.ts), generated from the rule's
 * chunkwise form; mode 'chunk' the chunkwise kernels (chunk-encoder.ts). The rule's snippets for
 * the generic template (recurrent-template.ts) are kept on the rule (`body`): they state the
 * update column by column in the plainest form, and the tests run them as an independent second
 * GPU implementation of the same rule. Inputs, names and order are taken from the reference
 * rule, so both sides cannot drift apart.
 */
import { ConfigError } from '../../reference/errors.js';
import type { BuiltinRule } from '../../reference/rules/types.js';
import type { ChunkForm } from './chunk-common.js';
import { makeChunkEncoder } from './chunk-encoder.js';
import { makeRecurrentFastEncoder } from './recurrent-fast.js';
import type { RecurrentBody } from './recurrent-template.js';
import { CHUNK_SIZES, type GpuRule, type KernelMode } from './types.js';

export interface BuiltinGpuRule extends GpuRule {
  /** the column-by-column snippets for the generic template (recurrent-template.ts) */
  readonly body: RecurrentBody;
  /** the docs/spec.md §5 form, from which the chunked and the fast token-by-token kernels are generated */
  readonly form: ChunkForm;
}

export function makeBuiltinGpuRule(ref: BuiltinRule, body: RecurrentBody, form: ChunkForm): BuiltinGpuRule {
  const recurrent = makeRecurrentFastEncoder({ name: ref.name, inputs: ref.inputs, form });
  const chunk = makeChunkEncoder({ name: ref.name, inputs: ref.inputs, form });
  const modes: readonly KernelMode[] = ['chunk', 'recurrent'];
  return {
    name: ref.name,
    inputs: ref.inputs,
    readLinear: ref.readLinear,
    modes,
    body,
    form,
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
