/** Canvas drawings for the learn page: state heatmaps, the routing overview, state norms over time. */

/** Diverging colour for x in [-1, 1]: blue (negative), white (0), red (positive). */
function diverging(x: number): string {
  const a = Math.min(1, Math.abs(x));
  const fade = Math.round(255 * (1 - a));
  return x >= 0 ? `rgb(255,${fade},${fade})` : `rgb(${fade},${fade},255)`;
}

const CELL = 18;

/** A [rows][cols] matrix as coloured cells, ±`scale` at full colour (0: all white). */
export function heatmap(M: readonly (readonly number[])[], scale: number, label: string): HTMLCanvasElement {
  const rows = M.length;
  const cols = rows ? M[0].length : 0;
  const c = document.createElement('canvas');
  c.width = cols * CELL;
  c.height = rows * CELL;
  c.className = 'heat';
  c.setAttribute('aria-label', label);
  c.title = `${label} (colour scale ±${scale.toPrecision(3)})`;
  const g = c.getContext('2d') as CanvasRenderingContext2D;
  M.forEach((r, i) =>
    r.forEach((x, j) => {
      g.fillStyle = diverging(scale > 0 ? x / scale : 0);
      g.fillRect(j * CELL, i * CELL, CELL, CELL);
    }),
  );
  return c;
}

export const maxAbs = (...Ms: (readonly (readonly number[])[])[]): number => Math.max(0, ...Ms.flatMap((M) => M.flatMap((r) => r.map(Math.abs))));

/** Tokens down, memories across; the colour is the routing weight (white: not selected). */
export function routingMap(weights: number[][], current: number): HTMLCanvasElement {
  const T = weights.length;
  const E = weights[0].length;
  const cw = Math.max(16, Math.floor(240 / E));
  const ch = Math.max(4, Math.min(16, Math.floor(320 / T)));
  const c = document.createElement('canvas');
  c.width = E * cw;
  c.height = T * ch;
  c.className = 'heat';
  c.setAttribute('aria-label', 'routing weights, tokens × memories');
  const g = c.getContext('2d') as CanvasRenderingContext2D;
  weights.forEach((r, t) =>
    r.forEach((w, e) => {
      g.fillStyle = w > 0 ? `rgba(200,90,0,${0.15 + 0.85 * w})` : '#fff';
      g.fillRect(e * cw, t * ch, cw - 1, ch - 1);
    }),
  );
  g.strokeStyle = '#000';
  g.strokeRect(0.5, current * ch + 0.5, E * cw - 1, ch - 1);
  return c;
}

export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** Lines of y over tokens 0..T-1, one per series, with a marker at the current token. */
export function lineChart(series: { label: string; y: number[]; colour: string }[], current: number): HTMLCanvasElement {
  const W = 420, H = 180, pad = 28;
  const c = document.createElement('canvas');
  c.width = W;
  c.height = H;
  c.setAttribute('aria-label', 'state norm over time');
  const g = c.getContext('2d') as CanvasRenderingContext2D;
  const T = series[0]?.y.length ?? 1;
  const top = Math.max(1e-12, ...series.flatMap((s) => s.y));
  const x = (t: number) => pad + (T > 1 ? (t / (T - 1)) * (W - 2 * pad) : 0);
  const y = (v: number) => H - pad - (v / top) * (H - 2 * pad);
  g.strokeStyle = '#999';
  g.strokeRect(pad, pad, W - 2 * pad, H - 2 * pad);
  g.fillStyle = '#333';
  g.font = '11px sans-serif';
  g.fillText(top.toPrecision(3), 2, pad + 4);
  g.fillText('0', 2, H - pad);
  g.fillText(`token 0 … ${T - 1}`, W / 2 - 30, H - 8);
  g.strokeStyle = '#bbb';
  g.beginPath();
  g.moveTo(x(current), pad);
  g.lineTo(x(current), H - pad);
  g.stroke();
  for (const s of series) {
    g.strokeStyle = s.colour;
    g.lineWidth = 2;
    g.beginPath();
    s.y.forEach((v, t) => (t ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
    g.stroke();
  }
  return c;
}
