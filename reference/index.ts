/** The float64 reference interpreter: the executable form of `docs/spec.md`. */
export * from './types.js';
export * from './errors.js';
export { route, routeToken, checkTopk } from './router.js';
export { BUILTIN_RULES, RULE_NAMES, getRule, isRuleName, type RuleName, type BuiltinRule, type HeadSequence } from './rules/index.js';
export { momForward, momGathered, gatherTokens, emptyState, copyState, scaleOf, validateCore } from './mom.js';
export { validateConfig, validateRule, validateState } from './validate.js';
export { MomState } from './state.js';
export { traceSteps, type TraceEvent, type TraceMemory, type TraceShared } from './trace.js';
export { sampleCoreInputs, mulberry32 } from './sample.js';
export * from './backward/index.js';
