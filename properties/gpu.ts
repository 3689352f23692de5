/** The GPU properties of issue 3, in the order they are reported. */
import { gpuChunkedEqualsRecurrent } from './chunked-vs-recurrent.js';
import { gpuDecodeEqualsForward } from './decode.js';
import { gpuGatherStableComplete } from './gather.js';
import { gpuEqualsReference } from './gpu-vs-reference.js';
import { gpuInactiveMemoryUnchanged } from './inactive-unchanged.js';
import { gpuMixBeforeEqualsAfter } from './mix-before-after.js';
import { gpuRelabelInvariant } from './relabel.js';
import type { Property } from './types.js';

export const GPU_PROPERTIES: Property<never>[] = [
  gpuGatherStableComplete,
  gpuEqualsReference,
  gpuChunkedEqualsRecurrent,
  gpuMixBeforeEqualsAfter,
  gpuDecodeEqualsForward,
  gpuInactiveMemoryUnchanged,
  gpuRelabelInvariant,
] as Property<never>[];
