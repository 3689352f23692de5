/**
 * The decode-latency curve as a standalone SVG (no plotting dependency): per-step latency
 * against context length on a log axis, median with a bar from the 10th to the 90th percentile
 * of the repeats, y from zero so that "flat" reads as flat.
 */
import type { DecodeResult } from './decode.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function quantile(a: readonly number[], q: number): number {
  const s = [...a].sort((x, y) => x - y);
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo);
}

export function decodeSvg(r: DecodeResult, subtitle: string): string {
  const W = 640;
  const Hh = 400;
  const m = { l: 70, r: 20, t: 60, b: 60 };
  const series = [
    { name: 'wall clock, GpuMomState.step (host round trip included)', color: '#1f77b4', rows: r.rows },
    { name: 'device time of the step kernels (GPU timestamps)', color: '#d62728', rows: r.deviceRows },
  ].map((x) => ({ ...x, pts: x.rows.map((row) => ({ x: row.context, y: row.ms, lo: quantile(row.repeats, 0.1), hi: quantile(row.repeats, 0.9) })) }));
  const pts = series.flatMap((x) => x.pts);
  const xs = pts.map((p) => Math.log2(p.x));
  const x0 = Math.floor(Math.min(...xs)) - 0.5;
  const x1 = Math.ceil(Math.max(...xs)) + 0.5;
  const yMax = Math.max(...pts.map((p) => p.hi)) * 1.25;
  const X = (c: number) => m.l + ((Math.log2(c) - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (v: number) => Hh - m.b - (v / yMax) * (Hh - m.t - m.b);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" viewBox="0 0 ${W} ${Hh}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${Hh}" fill="white"/>`);
  const { B, H, E, topk, dk, dv } = r.shape;
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">Decode latency per token, gated-delta, E = ${E}, k = ${topk}, shared, B = ${B}, H = ${H}, dk = ${dk}, dv = ${dv}</text>`);
  out.push(`<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">${esc(subtitle)}</text>`);
  // axes and grid
  out.push(`<line x1="${m.l}" y1="${Hh - m.b}" x2="${W - m.r}" y2="${Hh - m.b}" stroke="black"/>`);
  out.push(`<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${Hh - m.b}" stroke="black"/>`);
  for (let i = 0; i <= 5; i++) {
    const v = (yMax * i) / 5;
    out.push(`<line x1="${m.l}" y1="${Y(v)}" x2="${W - m.r}" y2="${Y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${m.l - 6}" y="${Y(v) + 4}" text-anchor="end">${v.toPrecision(3)}</text>`);
  }
  for (const p of series[0].pts) {
    const label = p.x >= 1024 ? `${(p.x / 1024).toFixed(p.x % 1024 ? 1 : 0)}K` : String(p.x);
    out.push(`<text x="${X(p.x)}" y="${Hh - m.b + 18}" text-anchor="middle">${label}</text>`);
  }
  out.push(`<text x="${(m.l + W - m.r) / 2}" y="${Hh - 15}" text-anchor="middle">context (tokens already in the state, log scale)</text>`);
  out.push(`<text x="18" y="${(m.t + Hh - m.b) / 2}" text-anchor="middle" transform="rotate(-90 18 ${(m.t + Hh - m.b) / 2})">ms per step (median; bar: 10th-90th percentile)</text>`);
  // the curve, the bars, the points
  series.forEach((sr, k) => {
    out.push(`<polyline fill="none" stroke="${sr.color}" stroke-width="2" points="${sr.pts.map((p) => `${X(p.x)},${Y(p.y)}`).join(' ')}"/>`);
    for (const p of sr.pts) {
      out.push(`<line x1="${X(p.x)}" y1="${Y(p.lo)}" x2="${X(p.x)}" y2="${Y(p.hi)}" stroke="${sr.color}"/>`);
      out.push(`<circle cx="${X(p.x)}" cy="${Y(p.y)}" r="4" fill="${sr.color}"/>`);
      out.push(`<text x="${X(p.x) + 8}" y="${Y(p.y) - 8}" fill="${sr.color}">${p.y.toPrecision(3)} ms</text>`);
    }
    out.push(`<rect x="${m.l + 10}" y="${m.t + 8 + 16 * k}" width="12" height="4" fill="${sr.color}"/>`);
    out.push(`<text x="${m.l + 28}" y="${m.t + 14 + 16 * k}">${esc(sr.name)}</text>`);
  });
  out.push(`<text x="${W - m.r}" y="${m.t - 4}" text-anchor="end" fill="#555">state: ${(r.stateBytes / 2 ** 20).toFixed(2)} MiB at every context (docs/spec.md §7: ${(r.formulaBytes / 2 ** 20).toFixed(2)} MiB)</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
