/** The float64 reference backward (issue 17 §1): docs/gradients.md says what it computes and how it is checked. */
export { momBackward, type MomGradients, type Upstream } from './mom.js';
export { routeBack, routeTokenBack } from './router.js';
export { BACKWARD_RULES, backwardOf, hasBackward } from './rules.js';
export { readBack, type RuleBackward, type TokenGrads } from './common.js';
export { linearBack } from './linear.js';
export { decayBack } from './decay.js';
export { glaBack } from './gla.js';
export { deltaBack } from './delta.js';
export { gatedDeltaBack } from './gated-delta.js';
export { segmentBackward, type SegmentGradients, type SegmentProblem } from './segments.js';
