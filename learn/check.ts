/**
 * "Check this GPU": momlab's property suite on the browser's WebGPU (gpu/device.ts takes
 * navigator.gpu), job by job as `momlab check` builds them, with the rows of its table.
 */
import { getGpu, type GpuContext } from '../gpu/device.js';
import { getGpuRule } from '../gpu/kernels/index.js';
import { gpuRuleFromChecked } from '../gpu/kernels/from-text.js';
import { SIZES } from '../properties/arbitraries.js';
import { gpuDecodeEqualsForward, refDecodeEqualsForward } from '../properties/decode.js';
import { GPU_PROPERTIES } from '../properties/gpu.js';
import { gpuMixBeforeEqualsAfter, refMixBeforeEqualsAfter } from '../properties/mix-before-after.js';
import { REFERENCE_PROPERTIES } from '../properties/reference.js';
import { stateStaysFinite, textGpuEqualsReference } from '../properties/rule-file.js';
import { runProperty } from '../properties/runner.js';
import { refStateSizeConstant } from '../properties/state-size.js';
import { TEXT_RULE_PREFIX } from '../properties/tolerances.js';
import type { Property, RuleTarget } from '../properties/types.js';
import { checkRuleText } from '../reference/rule-lang/check.js';
import { ruleFromChecked } from '../reference/rules/from-text.js';
import { getRule } from '../reference/rules/index.js';
import type { CheckRow } from '../src/cli/check.js';

/** The properties `momlab fuzz` runs on a rule file, where they apply to it. */
const TEXT_PROPERTIES = [textGpuEqualsReference, refMixBeforeEqualsAfter, gpuMixBeforeEqualsAfter, refDecodeEqualsForward, gpuDecodeEqualsForward, refStateSizeConstant, stateStaysFinite] as Property<never>[];

export interface CheckPlan {
  /** built-in rule names; or a rule file's text */
  rules: string[];
  ruleText?: string;
  gpuOnly: boolean;
  runs: number;
  seed: number;
}

export interface CheckProgress {
  job: number;
  jobs: number;
  label: string;
  cases: number;
}

function targets(plan: CheckPlan): { list: RuleTarget[]; props: Property<never>[] } {
  if (plan.ruleText !== undefined) {
    const checked = checkRuleText(plan.ruleText, { file: 'pasted rule' });
    const target = { name: `${TEXT_RULE_PREFIX}${checked.name}`, ref: ruleFromChecked(checked), gpu: gpuRuleFromChecked(checked) };
    return { list: [target], props: TEXT_PROPERTIES.filter((p) => !plan.gpuOnly || p.needsGpu) };
  }
  const list = plan.rules.map((name) => ({ name, ref: getRule(name), chunked: getRule(name), gpu: getGpuRule(name) }));
  return { list, props: plan.gpuOnly ? GPU_PROPERTIES : [...REFERENCE_PROPERTIES, ...GPU_PROPERTIES] };
}

/** Runs the plan; every finished job adds a row (the rows of `momlab check`'s table). */
export async function runChecks(plan: CheckPlan, onProgress: (p: CheckProgress) => void, onRow: (r: CheckRow) => void): Promise<{ device: string; rows: CheckRow[] }> {
  const { list, props } = targets(plan);
  const jobs: { prop: Property<never>; target: RuleTarget }[] = [];
  for (const prop of props) {
    if (!prop.perRule) jobs.push({ prop, target: list[0] });
    else for (const target of list) if (prop.applies(target)) jobs.push({ prop, target });
  }
  const ctx: GpuContext = await getGpu();
  const rows: CheckRow[] = [];
  for (const [i, { prop, target }] of jobs.entries()) {
    const label = `${prop.id} ${prop.perRule ? target.name : 'any'}`;
    let cases = 0;
    onProgress({ job: i, jobs: jobs.length, label, cases });
    const rep = await runProperty(prop, [target], { ctx }, {
      sizes: SIZES.small,
      sizeName: 'small',
      numRuns: plan.runs,
      seed: plan.seed,
      onCase: () => onProgress({ job: i, jobs: jobs.length, label, cases: ++cases }),
    });
    const s = rep.perRule[0];
    const row: CheckRow = {
      property: rep.property,
      rule: s?.rule ?? target.name,
      cases: rep.cases,
      worstErrRatio: s && !Number.isNaN(s.worstErrRatio) ? s.worstErrRatio : s ? null : 0,
      worstMaxAbs: s && !Number.isNaN(s.worstMaxAbs) ? s.worstMaxAbs : s ? null : 0,
      tolerance: s?.tolerance ?? 0,
      // a property that ran no case has not passed
      passed: rep.passed && rep.cases > 0,
      interrupted: false,
      failure: rep.failure,
    };
    rows.push(row);
    onRow(row);
  }
  onProgress({ job: jobs.length, jobs: jobs.length, label: 'done', cases: 0 });
  return { device: ctx.adapterInfo, rows };
}
