/**
 * docs/spec.md §7: the state's size does not depend on how many tokens have been seen. For random T,
 * the decode state's byteSize and its snapshot lengths before and after feeding T tokens, and
 * momForward's final state lengths, all equal (E + shared)·B·H·dk·dv numbers — a formula with
 * no T in it.
 */
import { momForward } from '../reference/mom.js';
import { MomState } from '../reference/state.js';
import { coreCaseArb, type CoreCase } from './arbitraries.js';
import { exact, type Property } from './types.js';

export const refStateSizeConstant: Property<CoreCase> = {
  id: 'state-size-constant',
  title: 'reference: the state size (E + shared)·B·H·dk·dv does not depend on T',
  needsGpu: false,
  perRule: true,
  applies: () => true,
  arbitrary: (t, sizes) => coreCaseArb(t.ref.inputs, sizes),
  check(_env, t, c) {
    const { cfg, x, initial } = c;
    const { B, H, E, dk, dv, shared } = cfg;
    const routed = E * B * H * dk * dv;
    const sharedN = shared ? B * H * dk * dv : 0;
    const bytes = 8 * (routed + sharedN);
    const st = new MomState(t.ref, cfg, initial);
    const sizes = (s: { routed: Float64Array; shared: Float64Array | null }) => `${s.routed.length}+${s.shared?.length ?? 0}`;
    const want = `${routed}+${sharedN}`;
    const first = sizes(st.snapshot());
    const size0 = st.byteSize;
    st.prefill(x, cfg.T);
    const problems = [
      size0 !== bytes && `byteSize ${size0} at creation, expected 8·(E+shared)·B·H·dk·dv = ${bytes}`,
      st.byteSize !== size0 && `byteSize changed from ${size0} to ${st.byteSize} after ${cfg.T} tokens`,
      first !== want && `snapshot has ${first} numbers at creation, expected ${want}`,
      sizes(st.snapshot()) !== want && `snapshot has ${sizes(st.snapshot())} numbers after ${cfg.T} tokens, expected ${want}`,
      st.tokensSeen !== cfg.T && `tokensSeen ${st.tokensSeen} after prefilling ${cfg.T}`,
      sizes(momForward(t.ref, cfg, x, { initial }).final) !== want && `momForward's final state is not ${want} numbers`,
    ].filter(Boolean);
    return exact(problems.length === 0, problems.join('; '));
  },
  describe: (c) => c,
};
