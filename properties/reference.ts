/** The reference properties of issue 2, in the order they are reported. */
import { refChunkedEqualsRecurrent } from './chunked-vs-recurrent.js';
import { refDecodeEqualsForward } from './decode.js';
import { gatheredEqualsDirect } from './gathered-vs-direct.js';
import { inactiveMemoryUnchanged } from './inactive-unchanged.js';
import { refMixBeforeEqualsAfter } from './mix-before-after.js';
import { routingInvariants } from './routing.js';
import { refStateSizeConstant } from './state-size.js';
import type { Property } from './types.js';

export const REFERENCE_PROPERTIES: Property<never>[] = [
  routingInvariants,
  refChunkedEqualsRecurrent,
  gatheredEqualsDirect,
  refMixBeforeEqualsAfter,
  inactiveMemoryUnchanged,
  refStateSizeConstant,
  refDecodeEqualsForward,
] as Property<never>[];
