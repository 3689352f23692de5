/**
 * Where a compared tensor goes wrong (for `momlab verify`): the element with the largest error,
 * the first token whose slice fails the tolerance, and the worst error ratio per head — the
 * indices named by the tensor's layout (docs/vectors.md), so that a failure points at a place.
 */

/** The axis names of an expected tensor, from its layout in docs/vectors.md. */
export function axesOf(name: string, rank: number): string[] {
  const known: [RegExp, string[]][] = [
    [/\.final_state\.|^core\.dh0\./, ['b', 'h', 'i', 'j']],
    [/^core\.(o|dq)$/, ['b', 't', 'h', 'i']],
    [/\.conv_cache\./, ['b', 'c', 'w']],
    [/^(layer\.router_logits|core\.drouter_logits)$/, ['b', 't', 'e']],
    [/^layer\.y$/, ['b', 't', 'i']],
    // a memory input's gradient, core.d<input>.<memory>: [B, T, H, width], or [B, T, H] for a scalar input
    [/^core\.d[^.]+\.[^.]+$/, ['b', 't', 'h', 'i']],
    [/^core\.d[^.]+\.[^.]+$/, ['b', 't', 'h']],
  ];
  const axes = known.find(([re, a]) => re.test(name) && a.length === rank)?.[1];
  return axes && axes.length === rank ? axes : Array.from({ length: rank }, (_, k) => `d${k}`);
}

export interface Where {
  axes: string[];
  /** the element with the largest |ref − out|, or the first non-finite one */
  worst: { index: Record<string, number>; ref: number; got: number; absErr: number };
  /** the first token (lowest t, then b) whose [b, t] slice fails the tolerance on its own; null without a token axis or when no slice fails alone */
  firstToken: { b: number; t: number; errRatio: number; maxAbs: number } | null;
  /** the error ratio of each head's slice (NaN where a value is not finite); null without a head axis */
  perHead: number[] | null;
}

interface Group {
  sumD: number;
  sumR: number;
  n: number;
  maxAbs: number;
  broken: boolean;
}

/** docs/spec.md §9's metric over the elements grouped by the given axes (row-major group index). */
function groups(shape: number[], by: number[], ref: ArrayLike<number>, got: ArrayLike<number>): Group[] {
  const count = by.reduce((a, k) => a * shape[k], 1);
  const out: Group[] = Array.from({ length: count }, () => ({ sumD: 0, sumR: 0, n: 0, maxAbs: 0, broken: false }));
  const strides = shape.map((_, k) => shape.slice(k + 1).reduce((a, b) => a * b, 1));
  for (let i = 0; i < ref.length; i++) {
    let g = 0;
    for (const k of by) g = g * shape[k] + (Math.floor(i / strides[k]) % shape[k]);
    const s = out[g];
    const d = Math.abs(ref[i] - got[i]);
    s.n++;
    if (!Number.isFinite(d)) s.broken = true;
    else {
      s.sumD += d * d;
      s.sumR += ref[i] * ref[i];
      s.maxAbs = Math.max(s.maxAbs, d);
    }
  }
  return out;
}

const ratio = (s: Group) => (s.broken ? NaN : s.n ? Math.sqrt(s.sumD / s.n) / (Math.sqrt(s.sumR / s.n) + 1e-8) : 0);

export function where(name: string, shape: number[], ref: ArrayLike<number>, got: ArrayLike<number>, tol: number, atol: number): Where {
  const axes = axesOf(name, shape.length);
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(ref[i] - got[i]);
    if (!Number.isFinite(d)) {
      worst = i;
      break;
    }
    if (d > Math.abs(ref[worst] - got[worst])) worst = i;
  }
  const strides = shape.map((_, k) => shape.slice(k + 1).reduce((a, b) => a * b, 1));
  const index = Object.fromEntries(axes.map((a, k) => [a, Math.floor(worst / strides[k]) % shape[k]]));
  const b = axes.indexOf('b');
  const t = axes.indexOf('t');
  const h = axes.indexOf('h');
  let firstToken: Where['firstToken'] = null;
  if (b >= 0 && t >= 0) {
    const bt = groups(shape, [b, t], ref, got);
    const T = shape[t];
    for (let tt = 0; tt < T && !firstToken; tt++) {
      for (let bb = 0; bb < shape[b] && !firstToken; bb++) {
        const s = bt[bb * T + tt];
        if (s.broken || (s.maxAbs > atol && ratio(s) > tol)) firstToken = { b: bb, t: tt, errRatio: ratio(s), maxAbs: s.broken ? NaN : s.maxAbs };
      }
    }
  }
  return {
    axes,
    worst: { index, ref: ref[worst], got: got[worst], absErr: Math.abs(ref[worst] - got[worst]) },
    firstToken,
    perHead: h >= 0 ? groups(shape, [h], ref, got).map(ratio) : null,
  };
}

const e = (x: number) => (Number.isNaN(x) ? 'NaN' : x.toExponential(2));

/** One line for the text report. */
export function describeWhere(name: string, w: Where): string {
  const at = Object.entries(w.worst.index).map(([a, i]) => `${a} ${i}`).join(', ');
  const parts = [`${name}: worst |err| ${e(w.worst.absErr)} at (${at}): expected ${e(w.worst.ref)}, got ${e(w.worst.got)}`];
  if (w.firstToken) parts.push(`first token over the tolerance: t ${w.firstToken.t} (b ${w.firstToken.b}, err ratio ${e(w.firstToken.errRatio)})`);
  else if (w.axes.includes('t')) parts.push('no single token over the tolerance');
  if (w.perHead) parts.push(`err ratio per head: ${w.perHead.map((r, i) => `h${i} ${e(r)}`).join(', ')}`);
  return parts.join('; ');
}
