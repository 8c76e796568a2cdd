// Time charts as server-rendered SVG: axes with units, ticks at round values and round UTC
// times, one polyline per series. No script and no inline style (CSP): colours come from
// classes in app.css. Fewer than two points draw no line; the caller's empty text says why.
import { html } from "hono/html";
import type { Html } from "./layout.ts";

export interface ChartPoint {
  ts: number;
  value: number;
}

export interface ChartSeries {
  label: string;
  /** Colour class (app.css: s-rx, s-tx, s-ok, s-bad). */
  cls: string;
  points: ChartPoint[];
}

export type ChartUnit = "bit/s" | "count";

export interface ChartOptions {
  /** Accessible name and caption. */
  title: string;
  unit: ChartUnit;
  /** What the y axis counts, e.g. "per 5 s" (shown with the unit). */
  unitNote?: string;
  series: ChartSeries[];
  /** Said instead of a chart when no series has two points. */
  empty: string;
  width?: number;
  height?: number;
}

// Room for the y labels (left), the last time label (right), the unit line (top), the time labels (bottom).
const M = { left: 72, right: 32, top: 22, bottom: 22 };

/** Round tick values from 0 to at least `max` (1, 2, 2.5, 5 × 10^k steps), at most ~`count` + 1. */
export function valueTicks(max: number, count = 4, integers = false): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * pow).find((s) => s >= raw)!;
  if (integers) step = Math.max(1, Math.ceil(step));
  const ticks: number[] = [];
  for (let v = 0; ticks.length === 0 || ticks[ticks.length - 1]! < max; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].map((s) => s * 1000);

/** Tick times at round UTC multiples within [t0, t1], at most `max` of them. */
export function timeTicks(t0: number, t1: number, max = 6): { step: number; ticks: number[] } {
  const span = Math.max(1, t1 - t0);
  const step = TIME_STEPS.find((s) => span / s <= max) ?? Math.ceil(span / max / 86_400_000) * 86_400_000;
  const ticks: number[] = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  return { step, ticks };
}

/** A time label in UTC: seconds only when the ticks are less than a minute apart. */
export function timeLabel(ts: number, step: number): string {
  const iso = new Date(ts).toISOString();
  return step < 60_000 ? iso.slice(11, 19) : step < 86_400_000 ? iso.slice(11, 16) : iso.slice(5, 10);
}

/** A value with its unit, short enough for an axis: "1.5 Mbit/s", "250 kbit/s", "3". */
export function valueLabel(v: number, unit: ChartUnit): string {
  if (unit === "count") return Number.isInteger(v) ? String(v) : v.toFixed(1);
  const prefixes = ["", "k", "M", "G", "T"];
  let i = 0;
  while (Math.abs(v) >= 1000 && i < prefixes.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(3))} ${prefixes[i]}bit/s`;
}

export function timeChart(o: ChartOptions): Html {
  const drawn = o.series.filter((s) => s.points.length >= 2);
  if (drawn.length === 0) return html`<figure class="chart"><figcaption>${o.title}</figcaption><p class="muted empty">${o.empty}</p></figure>`;
  const W = o.width ?? 640;
  const H = o.height ?? 180;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const all = drawn.flatMap((s) => s.points);
  const t0 = Math.min(...all.map((p) => p.ts));
  const t1 = Math.max(...all.map((p) => p.ts));
  const yt = valueTicks(Math.max(...all.map((p) => p.value)), 4, o.unit === "count");
  const yMax = yt[yt.length - 1]!;
  const xt = timeTicks(t0, t1);
  const x = (t: number) => M.left + ((t - t0) / Math.max(1, t1 - t0)) * pw;
  const y = (v: number) => M.top + ph - (v / yMax) * ph;
  const f = (n: number) => n.toFixed(1);
  const unit = o.unit === "count" ? (o.unitNote ?? "count") : `${o.unit}${o.unitNote ? ` ${o.unitNote}` : ""}`;
  return html`<figure class="chart"><figcaption>${o.title}</figcaption>
<svg class="chart" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${o.title}">
<g class="grid">${yt.map((v) => html`<line x1="${M.left}" x2="${W - M.right}" y1="${f(y(v))}" y2="${f(y(v))}"/>`)}</g>
<g class="axis"><line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + ph}"/><line x1="${M.left}" x2="${W - M.right}" y1="${M.top + ph}" y2="${M.top + ph}"/></g>
<g class="ticks y" data-axis="y">${yt.map((v) => html`<text x="${M.left - 6}" y="${f(y(v) + 4)}" text-anchor="end">${valueLabel(v, o.unit)}</text>`)}</g>
<g class="ticks x" data-axis="x">${xt.ticks.map((t) => html`<line x1="${f(x(t))}" x2="${f(x(t))}" y1="${M.top + ph}" y2="${M.top + ph + 4}"/><text x="${f(x(t))}" y="${H - 6}" text-anchor="middle">${timeLabel(t, xt.step)}</text>`)}</g>
<text class="unit" x="4" y="12">${unit}</text><text class="unit" x="${W - M.right}" y="12" text-anchor="end">time (UTC)</text>
${drawn.map((s) => html`<polyline class="line ${s.cls}" points="${s.points.map((p) => `${f(x(p.ts))},${f(y(p.value))}`).join(" ")}"><title>${s.label}</title></polyline>`)}
</svg>
<div class="legend">${o.series.map((s) => html`<span class="key ${s.cls}">${s.label}</span>`)} <span class="muted">${new Date(t0).toISOString().slice(11, 19)}–${new Date(t1).toISOString().slice(11, 19)} UTC</span></div></figure>`;
}

/**
 * Stored samples hold only intervals with traffic (store/traffic.ts): a gap longer than an
 * interval is zero traffic, and so is the time since the last sample. Fills those with zeros so
 * the line falls to zero instead of bridging the gap.
 */
export function fillQuietIntervals(points: ChartPoint[], intervalMs: number, now: number): ChartPoint[] {
  const out: ChartPoint[] = [];
  const gap = intervalMs * 1.5;
  for (const p of points) {
    const prev = out[out.length - 1];
    if (prev && p.ts - prev.ts > gap) {
      out.push({ ts: prev.ts + intervalMs, value: 0 });
      // The interval ending at p started at p.ts - interval: zero until then.
      if (p.ts - intervalMs > prev.ts + intervalMs) out.push({ ts: p.ts - intervalMs, value: 0 });
    }
    out.push(p);
  }
  const last = out[out.length - 1];
  if (last && now - last.ts > gap) out.push({ ts: last.ts + intervalMs, value: 0 }, { ts: now, value: 0 });
  return out;
}
