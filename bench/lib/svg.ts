/**
 * Small line plots as SVG text. Hand-written: two plot kinds with a legend are a
 * page of code, and it keeps the benchmark free of a charting dependency tree.
 */

export interface Series {
  name: string;
  points: ReadonlyArray<readonly [number, number]>;
}

export interface PlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** Fixed y maximum (e.g. 1 for a CDF); default: the data's. */
  yMax?: number;
  /** Step lines (a CDF or a counter) instead of straight segments. */
  step?: boolean;
}

const COLORS = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#7f7f7f',
  '#bcbd22',
];

export function escapeXml(s: string): string {
  return s.replace(
    /[<>&"']/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] ?? c,
  );
}

/** A "nice" upper bound and tick step for an axis from 0 to max. */
export function niceAxis(max: number, ticks = 5): { max: number; step: number } {
  if (!(max > 0) || !Number.isFinite(max)) return { max: 1, step: 0.2 };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
  return { max: Math.ceil(max / step - 1e-9) * step, step };
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(3)));
}

export function linePlot(series: readonly Series[], o: PlotOptions): string {
  const W = o.width ?? 720;
  const H = o.height ?? 420;
  const m = { l: 64, r: 180, t: 36, b: 48 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const allX = series.flatMap((s) => s.points.map((p) => p[0]));
  const allY = series.flatMap((s) => s.points.map((p) => p[1]));
  const xa = niceAxis(Math.max(0, ...allX));
  const ya = niceAxis(o.yMax ?? Math.max(0, ...allY));
  const sx = (x: number) => m.l + (x / xa.max) * pw;
  const sy = (y: number) => m.t + ph - (y / ya.max) * ph;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(o.title)}</text>`);
  for (let x = 0; x <= xa.max + 1e-9; x += xa.step) {
    parts.push(`<line x1="${sx(x).toFixed(1)}" y1="${m.t}" x2="${sx(x).toFixed(1)}" y2="${m.t + ph}" stroke="#eee"/>`);
    parts.push(`<text x="${sx(x).toFixed(1)}" y="${m.t + ph + 16}" text-anchor="middle">${fmt(x)}</text>`);
  }
  for (let y = 0; y <= ya.max + 1e-9; y += ya.step) {
    parts.push(`<line x1="${m.l}" y1="${sy(y).toFixed(1)}" x2="${m.l + pw}" y2="${sy(y).toFixed(1)}" stroke="#eee"/>`);
    parts.push(`<text x="${m.l - 6}" y="${(sy(y) + 4).toFixed(1)}" text-anchor="end">${fmt(y)}</text>`);
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${m.l + pw / 2}" y="${H - 10}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`);
  parts.push(
    `<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${escapeXml(o.yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length] ?? '#000';
    const d: string[] = [];
    let prevY: number | undefined;
    for (const [x, y] of s.points) {
      if (d.length === 0) d.push(`M${sx(x).toFixed(1)},${sy(y).toFixed(1)}`);
      else {
        if (o.step && prevY !== undefined) d.push(`L${sx(x).toFixed(1)},${sy(prevY).toFixed(1)}`);
        d.push(`L${sx(x).toFixed(1)},${sy(y).toFixed(1)}`);
      }
      prevY = y;
    }
    if (d.length > 0)
      parts.push(
        `<path class="series" data-name="${escapeXml(s.name)}" d="${d.join(' ')}" fill="none" stroke="${color}" stroke-width="1.8"/>`,
      );
    const ly = m.t + 10 + i * 18;
    parts.push(
      `<line x1="${m.l + pw + 12}" y1="${ly}" x2="${m.l + pw + 32}" y2="${ly}" stroke="${color}" stroke-width="3"/>`,
    );
    parts.push(`<text x="${m.l + pw + 38}" y="${ly + 4}">${escapeXml(s.name)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
