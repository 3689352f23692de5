/**
 * The learn page: controls and URL state, the token stepper with this token's formulas (MathML),
 * the state heatmaps, the sequence overview, one chunk of the chunked form, and "check this GPU".
 * All numbers come from learn/model.ts and learn/check.ts, i.e. from momlab's own code.
 */
import { formatTable } from '../src/cli/check.js';
import { runChecks } from './check.js';
import { fmt, formula, h, m, mat, mi, mo, num, vec } from './dom.js';
import { heatmap, lineChart, maxAbs, PALETTE, routingMap } from './heatmap.js';
import { buildModel, chunkView, MAX_RULE_TEXT, norm, paramsFromQuery, paramsToQuery, stepParts, type Model, type Params } from './model.js';
import type { TraceShared } from '../reference/trace.js';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const NUMERIC = ['E', 'topk', 'dk', 'dv', 'T', 'seed', 'C', 'chunk'] as const;

let params: Params = paramsFromQuery(location.search);
let model: Model | null = null;

function showError(message: string): void {
  $('error').textContent = message;
}

function writeControls(p: Params): void {
  ($('rule') as HTMLSelectElement).value = p.rule;
  ($('ruleText') as HTMLTextAreaElement).value = p.ruleText;
  $('rule-file').hidden = p.rule !== 'file';
  for (const k of NUMERIC) ($(k) as HTMLInputElement).value = String(p[k]);
  ($('shared') as HTMLInputElement).checked = p.shared;
  const t = $('t') as HTMLInputElement;
  t.max = String(p.T - 1);
  t.value = String(p.t);
  const mem = $('mem') as HTMLSelectElement;
  mem.replaceChildren(...Array.from({ length: p.E }, (_, e) => h('option', { value: String(e) }, `memory ${e}`)), ...(p.shared ? [h('option', { value: '-1' }, 'shared memory')] : []));
  mem.value = String(p.mem);
}

function readControls(): Params {
  const q = new URLSearchParams();
  q.set('rule', ($('rule') as HTMLSelectElement).value);
  q.set('ruleText', ($('ruleText') as HTMLTextAreaElement).value);
  for (const k of NUMERIC) q.set(k, ($(k) as HTMLInputElement).value);
  q.set('shared', ($('shared') as HTMLInputElement).checked ? '1' : '0');
  q.set('t', ($('t') as HTMLInputElement).value);
  q.set('mem', ($('mem') as HTMLSelectElement).value);
  return paramsFromQuery(q.toString());
}

/** Recompute from the controls (or `p`), keep the URL in step, redraw. */
function update(p: Params = readControls()): void {
  params = p;
  history.replaceState(null, '', `?${paramsToQuery(p)}`);
  writeControls(p);
  try {
    model = buildModel(p);
    showError('');
  } catch (e) {
    model = null;
    showError((e as Error).message);
    for (const id of ['routing', 'mix', 'memories', 'states', 'shared-state', 'routing-map', 'norms', 'norm-legend', 'chunk-view']) $(id).replaceChildren();
    return;
  }
  renderToken();
  renderOverview();
  renderChunk();
}

function setToken(t: number): void {
  if (!model) return;
  params = { ...params, t: Math.min(params.T - 1, Math.max(0, t)) };
  history.replaceState(null, '', `?${paramsToQuery(params)}`);
  ($('t') as HTMLInputElement).value = String(params.t);
  renderToken();
  renderOverview();
}

// ---- this token's formulas ----

const eq = (...parts: (Node | string)[]) => formula(...parts.map((x) => (typeof x === 'string' ? mo(x) : x)));
const sup = (base: Node, s: string) => m('msup', base, m('mi', s));
const bar = (x: Node) => m('mover', x, mo('¯'));
const prime = (name: string) => m('msup', mi(name), mo('′'));
const S = () => mi('S');

function routingBlock(model: Model, t: number): HTMLElement {
  const ev = model.events[t];
  return h(
    'div',
    { class: 'card' },
    h('h3', {}, 'routing'),
    eq(mi('z'), '=', vec(ev.logits, 'logits')),
    eq(mi('p'), '=', m('mi', 'softmax'), m('mo', '(', ), mi('z'), mo(')'), '=', vec(ev.probs, 'probs')),
    eq(mi('I', 't'), '=', m('mi', `top-${model.cfg.topk}`), mo('('), mi('p'), mo(')'), '=', m('mrow', mo('{'), ...ev.selected.flatMap((e, j) => [...(j ? [mo(',')] : []), m('mn', String(e))]), mo('}'))),
    eq(mi('w'), '=', m('mfrac', m('msub', mi('p'), mi('I')), m('mrow', mo('∑'), m('msub', mi('p'), mi('I')))), '=', vec(ev.weights, 'weights')),
    eq(m('mi', 's'), mi('q'), '=', vec(ev.q, 'q'), mo(','), m('mi', 's'), '=', num(model.scale)),
  );
}

/** The rule's update, written out with this token's numbers (built-ins), or the rule file's own lines. */
function updateFormulas(ruleName: string, mem: TraceShared, key: string, dk: number, dv: number, text: string): Node[] {
  const out: Node[] = [];
  if (mem.k) out.push(eq(mi('k'), '=', vec(mem.k, `${key}.k`)));
  if (mem.v) out.push(eq(mi('v'), '=', vec(mem.v, `${key}.v`)));
  if (mem.g !== null) out.push(eq(mi('g'), '=', typeof mem.g === 'number' ? num(mem.g, `${key}.g`) : vec(mem.g, `${key}.g`)));
  if (mem.beta !== null) out.push(eq(mi('β'), '=', num(mem.beta, `${key}.beta`)));
  for (const [n, v] of Object.entries(mem.extra ?? {})) out.push(eq(mi(n), '=', typeof v === 'number' ? num(v) : vec(v)));
  if (ruleName === 'file') {
    const lines = text.split('\n').filter((l) => /^\s*(let|update|output)\b/.test(l));
    out.push(h('p', { class: 'note' }, 'the rule file, step by step:'), h('pre', {}, lines.join('\n')));
    return out;
  }
  const sp = stepParts(ruleName, mem, dk, dv);
  const kvT = m('mrow', mi('k'), sup(mi('v'), 'T'));
  if (sp.alpha !== null) {
    const a = typeof sp.alpha === 'number' ? num(sp.alpha, `${key}.alpha`) : vec(sp.alpha, `${key}.alpha`);
    out.push(eq(mi('α'), '=', sup(mi('e'), 'g'), '=', a), h('p', { class: 'note' }, 'decay:'), eq(bar(S()), '=', ruleName === 'gla' ? m('mrow', m('mi', 'diag'), mo('('), mi('α'), mo(')'), S()) : m('mrow', mi('α'), S())));
  }
  const Sd = sp.alpha !== null ? bar(S()) : S();
  if (sp.prediction && sp.error) {
    out.push(
      h('p', { class: 'note' }, 'prediction (what the memory recalls for k):'),
      eq(m('mover', mi('v'), mo('^')), '=', sup(sp.alpha !== null ? bar(S()) : mi('S'), 'T'), mi('k'), '=', vec(sp.prediction, `${key}.prediction`)),
      h('p', { class: 'note' }, 'error, scaled by β:'),
      eq(mi('u'), '=', mi('β'), mo('('), mi('v'), mo('−'), m('mover', mi('v'), mo('^')), mo(')'), '=', vec(sp.error, `${key}.error`)),
      h('p', { class: 'note' }, 'write:'),
      eq(prime('S'), '=', sp.alpha !== null ? bar(S()) : mi('S'), '+', mi('k'), sup(mi('u'), 'T')),
    );
  } else {
    out.push(h('p', { class: 'note' }, 'write:'), eq(prime('S'), '=', Sd, '+', kvT));
  }
  return out;
}

function memoryCard(model: Model, p: Params, mem: TraceShared, title: string, key: string): HTMLElement {
  const { dk, dv } = model.cfg;
  return h(
    'div',
    { class: 'card', 'data-memory': key },
    h('h3', {}, title),
    ...updateFormulas(p.rule, mem, key, dk, dv, p.ruleText),
    h('p', { class: 'note' }, 'read-out:'),
    eq(m('msub', mi('o'), m('mi', key === 'shared' ? 's' : key.slice(1))), '=', p.rule === 'file' ? m('mrow', m('mi', 'read'), mo('('), prime('S'), mo(','), mi('q'), mo(')')) : m('mrow', sup(prime('S'), 'T'), mi('q')), '=', vec(mem.output, `${key}.output`)),
  );
}

function mixBlock(model: Model): HTMLElement {
  const ev = model.events[params.t];
  const diff = Math.max(...ev.outputMixAfter.map((a, i) => Math.abs(a - ev.outputMixBefore[i])));
  const sumW = m('mrow', m('munder', mo('∑'), m('mrow', mi('e'), mo('∈'), mi('I', 't'))), m('msub', mi('w'), mi('e')));
  return h(
    'div',
    { class: 'card' },
    h('h3', {}, 'mixing the memories'),
    h('p', { class: 'note' }, 'mix after: weigh the memories\' read-outs'),
    eq(m('msub', mi('o'), m('mi', 'after')), '=', sumW, m('msub', mi('o'), mi('e')), ...(model.cfg.shared ? ['+', m('msub', mi('o'), mi('s'))] : []), '=', vec(ev.outputMixAfter, 'mixAfter')),
    h('p', { class: 'note' }, 'mix before: read the weighted sum of the states'),
    eq(m('msub', mi('o'), m('mi', 'before')), '=', m('mi', 'read'), mo('('), sumW, m('msubsup', mi('S'), mi('e'), mo('′')), ...(model.cfg.shared ? ['+', m('msubsup', mi('S'), mi('s'), mo('′'))] : []), mo(','), mi('q'), mo(')'), '=', vec(ev.outputMixBefore, 'mixBefore')),
    eq(m('mi', 'max'), mo('|'), m('msub', mi('o'), m('mi', 'after')), mo('−'), m('msub', mi('o'), m('mi', 'before')), mo('|'), '=', num(diff, 'mixDiff')),
    h('p', { class: 'note' }, model.rule.readLinear ? 'the read-out is linear in S, so both agree up to rounding' : 'this rule\'s read-out is not linear in S: the two may differ'),
  );
}

function stateCard(title: string, before: number[][], after: number[][], idle: boolean, key: string): HTMLElement {
  const change = after.map((r, i) => r.map((x, j) => x - before[i][j]));
  const scale = maxAbs(before, after);
  const fig = (label: string, M: number[][], s: number) => h('figure', {}, heatmap(M, s, `${title}: ${label}`), h('figcaption', {}, label));
  return h(
    'div',
    { class: idle ? 'card idle' : 'card', 'data-state': key },
    h('h3', {}, title),
    h('div', { class: 'heats' }, fig('before', before, scale), fig('after', after, scale), fig(idle ? 'change (none)' : 'change', change, maxAbs(change))),
    h('p', { class: 'note' }, `‖S‖ ${fmt(norm(before))} → ${fmt(norm(after))}`),
    h('details', {}, h('summary', {}, 'numbers'), eq(mi('S'), '=', mat(before, `${key}.before`)), eq(prime('S'), '=', mat(after, `${key}.after`))),
  );
}

function renderToken(): void {
  if (!model) return;
  const { t } = params;
  const ev = model.events[t];
  const { dk, dv, E } = model.cfg;
  $('token-label').textContent = `token ${t} of ${params.T - 1}`;
  $('routing').replaceChildren(routingBlock(model, t));
  $('mix').replaceChildren(mixBlock(model));
  $('memories').replaceChildren(
    ...ev.memories.map((mem, j) => memoryCard(model as Model, params, mem, `memory ${mem.index} (selected, weight ${fmt(ev.weights[j])})`, `m${mem.index}`)),
    ...(ev.shared ? [memoryCard(model, params, ev.shared, 'shared memory (always on, weight 1)', 'shared')] : []),
  );
  const zero = Array.from({ length: dk }, () => new Array<number>(dv).fill(0));
  const prev = t > 0 ? model.states[t - 1] : null;
  $('states').replaceChildren(
    ...Array.from({ length: E }, (_, e) => {
      const j = ev.selected.indexOf(e);
      const title = j >= 0 ? `memory ${e} — selected, weight ${fmt(ev.weights[j])}` : `memory ${e} — not selected: unchanged`;
      return stateCard(title, prev ? prev[e] : zero, (model as Model).states[t][e], j < 0, `m${e}`);
    }),
  );
  const sh = model.sharedStates;
  $('shared-state').replaceChildren(...(sh ? [stateCard('shared memory — always on', t > 0 ? sh[t - 1] : zero, sh[t], false, 'shared')] : []));
}

function renderOverview(): void {
  if (!model) return;
  const { E } = model.cfg;
  const weights = model.events.map((ev) => Array.from({ length: E }, (_, e) => {
    const j = ev.selected.indexOf(e);
    return j >= 0 ? ev.weights[j] : 0;
  }));
  $('routing-map').replaceChildren(routingMap(weights, params.t));
  const series = Array.from({ length: E }, (_, e) => ({ label: `memory ${e}`, y: (model as Model).states.map((s) => norm(s[e])), colour: PALETTE[e % PALETTE.length] }));
  if (model.sharedStates) series.push({ label: 'shared', y: model.sharedStates.map(norm), colour: '#000' });
  $('norms').replaceChildren(lineChart(series, params.t));
  $('norm-legend').replaceChildren(...series.map((s) => h('span', { style: `color: ${s.colour}` }, `■ ${s.label}`)));
}

// ---- the chunked form ----

const rows = (a: Float64Array, r: number, c: number): number[][] => Array.from({ length: r }, (_, i) => Array.from(a.subarray(i * c, (i + 1) * c)));

function renderChunk(): void {
  if (!model) return;
  const box = $('chunk-view');
  if (!model.builtin) {
    box.replaceChildren(h('p', {}, `A rule file has no chunked form (only the built-in rules do): its memories run token by token.`));
    return;
  }
  const { dk, dv } = model.cfg;
  const view = chunkView(model, params.mem, params.C);
  if (view.chunks.length === 0) {
    box.replaceChildren(h('p', {}, `No token was routed to this memory: it has no chunk and keeps its zero state.`));
    return;
  }
  const ci = Math.min(params.chunk, view.chunks.length - 1);
  const ch = view.chunks[ci];
  const tokens = view.tokens.slice(ch.start, ch.start + ch.c);
  const parts: Node[] = [
    h('p', {}, `This memory gets ${view.tokens.length} token(s): ${view.tokens.join(', ')}. With C = ${params.C} that is ${view.chunks.length} chunk(s); chunk ${ci} holds tokens ${tokens.join(', ')}.`),
  ];
  const line = (label: string, ...f: Node[]) => h('div', { class: 'card' }, h('h3', {}, label), ...f);
  const G = ch.G.length === ch.c ? eq(mi('G'), '=', vec(Array.from(ch.G), 'chunk.G')) : eq(mi('G'), '=', mat(rows(ch.G, ch.c, dk), 'chunk.G'));
  const cards: Node[] = [line('running log-decay from the chunk start', G), line('chunk-start state h', heatmap(rows(ch.h, dk, dv), maxAbs(rows(ch.h, dk, dv)), 'chunk-start state'), eq(mi('h'), '=', mat(rows(ch.h, dk, dv), 'chunk.h')))];
  if (ch.L && ch.A && ch.W && ch.U && ch.Vp) {
    cards.push(
      line('L: β_i (k_i · k_j) e^(G_i − G_j) below the diagonal, 0 elsewhere', eq(mi('L'), '=', mat(rows(ch.L, ch.c, ch.c), 'chunk.L'))),
      line('A = (I + L)⁻¹', eq(mi('A'), '=', m('msup', m('mrow', mo('('), mi('I'), mo('+'), mi('L'), mo(')')), m('mn', '−1')), '=', mat(rows(ch.A, ch.c, ch.c), 'chunk.A'))),
      line('W = A ((β e^G) ⊙ K)', eq(mi('W'), '=', mat(rows(ch.W, ch.c, dk), 'chunk.W'))),
      line('U = A (β ⊙ V)', eq(mi('U'), '=', mat(rows(ch.U, ch.c, dv), 'chunk.U'))),
      line('V′ = U − W h (the corrected values)', eq(prime('V'), '=', mat(rows(ch.Vp, ch.c, dv), 'chunk.Vp'))),
    );
  } else if (ch.P) {
    cards.push(line('P: Σ_a q_i[a] k_j[a] e^(G_i[a] − G_j[a]) for j ≤ i, 0 above', eq(mi('P'), '=', mat(rows(ch.P, ch.c, ch.c), 'chunk.P'))));
  }
  const chunked = view.chunked.slice(ch.start, ch.start + ch.c);
  const recurrent = view.recurrent.slice(ch.start, ch.start + ch.c);
  const diff = Math.max(...chunked.flatMap((r, i) => r.map((x, j) => Math.abs(x - recurrent[i][j]))));
  cards.push(
    line('outputs of this chunk', eq(m('msub', mi('O'), m('mi', 'chunked')), '=', mat(chunked, 'chunk.out')), eq(m('msub', mi('O'), m('mi', 'token by token')), '=', mat(recurrent, 'chunk.rec')), eq(m('mi', 'max'), mo('|'), mo('Δ'), mo('|'), '=', num(diff, 'chunk.diff'))),
  );
  parts.push(h('div', { class: 'cards' }, ...cards));
  box.replaceChildren(...parts);
}

// ---- check this GPU ----

async function checkGpu(): Promise<void> {
  const status = $('check-status');
  const table = $('check-table');
  const button = $('check-run') as HTMLButtonElement;
  if (!('gpu' in navigator)) {
    status.textContent = 'This browser offers no WebGPU (navigator.gpu): nothing to check.';
    return;
  }
  const runs = Number(($('check-runs') as HTMLInputElement).value);
  const seedInput = $('check-seed') as HTMLInputElement;
  if (seedInput.value === '') seedInput.value = String((Math.random() * 2 ** 31) | 0);
  const seed = Number(seedInput.value);
  if (!Number.isInteger(runs) || runs < 1 || runs > 1000 || !Number.isInteger(seed) || seed < 0) {
    status.textContent = 'cases per property must be an integer in 1..1000 and the seed a non-negative integer';
    return;
  }
  const current = ($('check-rules') as HTMLSelectElement).value === 'current';
  if (current && params.rule === 'file' && !model) {
    status.textContent = 'the rule file above does not compile; fix it first';
    return;
  }
  button.disabled = true;
  status.className = '';
  status.textContent = 'running…';
  table.textContent = '';
  const progress = $('check-progress') as HTMLProgressElement;
  const rowsSoFar: Parameters<typeof formatTable>[0] = [];
  try {
    const { device, rows } = await runChecks(
      {
        rules: current ? (params.rule === 'file' ? [] : [params.rule]) : ['linear', 'decay', 'gla', 'delta', 'gated-delta'],
        ruleText: current && params.rule === 'file' ? params.ruleText : undefined,
        gpuOnly: ($('check-gpu-only') as HTMLInputElement).checked,
        runs,
        seed,
      },
      (p) => {
        progress.max = p.jobs;
        progress.value = p.job;
        $('check-label').textContent = p.job < p.jobs ? `${p.job + 1}/${p.jobs} ${p.label} (${p.cases} cases)` : `${p.jobs}/${p.jobs} done`;
      },
      (row) => {
        rowsSoFar.push(row);
        table.textContent = formatTable(rowsSoFar);
      },
    );
    const failed = rows.filter((r) => !r.passed);
    const lines = [formatTable(rows)];
    for (const r of failed) {
      const f = r.failure;
      lines.push('', `${r.property} ${r.rule}: ${f ? f.message : 'no case ran'}`);
      if (f) lines.push(`  shrunk case: ${JSON.stringify(f.shrunk)}`, `  replay: ${f.replay}`);
    }
    table.textContent = lines.join('\n');
    status.className = failed.length ? 'fail' : 'pass';
    status.textContent = failed.length ? `${failed.length} of ${rows.length} failed on ${device} (seed ${seed})` : `all ${rows.length} passed on ${device} (seed ${seed})`;
  } catch (e) {
    status.className = 'fail';
    status.textContent = `the check stopped: ${(e as Error).message}`;
  } finally {
    button.disabled = false;
  }
}

// ---- wiring ----

let playing: ReturnType<typeof setInterval> | null = null;
function stopPlaying(): void {
  if (playing) clearInterval(playing);
  playing = null;
  $('play').textContent = '▶ play';
}

function wire(): void {
  let typing: ReturnType<typeof setTimeout> | undefined;
  $('controls').addEventListener('change', (ev) => {
    if ((ev.target as HTMLElement).id !== 'rule-load') update();
  });
  $('ruleText').addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => update(), 400);
  });
  $('rule-load').addEventListener('change', async () => {
    const file = ($('rule-load') as HTMLInputElement).files?.[0];
    if (!file) return;
    if (file.size > MAX_RULE_TEXT) {
      showError(`${file.name} is ${file.size} bytes; a rule file may have at most ${MAX_RULE_TEXT}`);
      return;
    }
    ($('ruleText') as HTMLTextAreaElement).value = await file.text();
    update();
  });
  for (const id of ['C', 'mem', 'chunk']) $(id).addEventListener('change', () => update());
  $('t').addEventListener('input', () => setToken(Number(($('t') as HTMLInputElement).value)));
  $('prev').addEventListener('click', () => setToken(params.t - 1));
  $('next').addEventListener('click', () => setToken(params.t + 1));
  $('play').addEventListener('click', () => {
    if (playing) return stopPlaying();
    if (params.t >= params.T - 1) setToken(0);
    $('play').textContent = '⏸ pause';
    playing = setInterval(() => (params.t >= params.T - 1 ? stopPlaying() : setToken(params.t + 1)), 700);
  });
  $('check-run').addEventListener('click', () => void checkGpu());
  if (!('gpu' in navigator)) $('check-status').textContent = 'This browser offers no WebGPU (navigator.gpu): the check cannot run here.';
}

wire();
update(params);
