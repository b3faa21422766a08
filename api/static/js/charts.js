// Time-series charts with the vendored uPlot (assets/vendor/uplot, MIT): the sensor trace of a
// telemetry alert and the statistics trends. uPlot builds its DOM with textContent, draws on a
// canvas and needs no inline script or style element, so it runs under the page's strict CSP.

import { h } from "./dom.js";
import { formatDate, t, zonedParts } from "./i18n.js";

export const COLOURS = ["#1f6feb", "#c4162a", "#1a7f37", "#9a6700", "#8250df", "#0a7ea4", "#bf3989"];

function uPlotLib() {
  return globalThis.uPlot ?? null;
}

/**
 * A line chart over time. `xs`: epoch seconds, ascending. `series`: [{label, values, colour,
 * dash, points}], each `values` as long as `xs` (null for a gap). `format(v)`: the value's text on
 * the axis and in the legend. `markers`: [{at (epoch seconds), colour}] drawn as dashed vertical
 * lines (the alert's start and end on a sensor trace). `xRange`/`yRange`: fixed [min, max] instead
 * of fitting the data (a report's period, a percentage); `integer`: counts, from zero, whole-number
 * ticks. A series with a `unit` ("℃", "%") is drawn on that unit's own scale and axis (the first
 * unit on the left, the next on the right): values in different units never share an axis. Times
 * are 24-hour, in the bureau's zone. Returns the destroy function.
 */
export function timeChart(
  container,
  {
    xs, series, height = 260, format = (v) => String(v), yRange = null, xRange = null, integer = false,
    testid = null, markers = [],
  },
) {
  const U = uPlotLib();
  const box = h("div", { class: "chart", "data-testid": testid ?? "chart" });
  container.append(box);
  if (!U) {
    box.append(h("p", { class: "muted" }, t("chart.no_library")));
    return () => box.remove();
  }
  const show = (v, unit = "") => (v === null || v === undefined ? "—" : `${format(v)}${unit ? ` ${unit}` : ""}`);
  // One scale per unit; series without a unit share "y".
  const units = [...new Set(series.map((s) => s.unit ?? ""))];
  const scaleOf = (unit) => (unit ? `u:${unit}` : "y");
  const yScale = yRange ? { range: yRange } : integer ? { range: (_u, _min, max) => [0, Math.max(1, Math.ceil(max))] } : { auto: true };
  const scales = { x: xRange ? { time: true, range: () => xRange } : { time: true } };
  for (const unit of units) scales[scaleOf(unit)] = { ...yScale };
  const span = xs.length ? (xRange ?? [xs[0], xs.at(-1)]) : [0, 0];
  const multiDay = span[1] - span[0] > 36 * 3600;
  const tick = (sec) => {
    const p = zonedParts(new Date(sec * 1000));
    return multiDay ? `${p.month}-${p.day}` : `${p.hour === "24" ? "00" : p.hour}:${p.minute}`;
  };
  const opts = {
    width: Math.max(box.clientWidth || container.clientWidth || 600, 200),
    height,
    scales,
    series: [
      { label: t("chart.time"), value: (_u, v) => (v === null || v === undefined ? "—" : formatDate(new Date(v * 1000))) },
      ...series.map((s, i) => ({
        label: s.unit ? `${s.label} (${s.unit})` : s.label,
        scale: scaleOf(s.unit ?? ""),
        stroke: s.colour ?? COLOURS[i % COLOURS.length],
        width: 2,
        dash: s.dash,
        spanGaps: s.spanGaps ?? true, // a null is "no reading at this instant", not an outage
        points: { show: s.points ?? xs.length <= 60 },
        value: (_u, v) => show(v, s.unit),
      })),
    ],
    axes: [
      { values: (_u, ticks) => ticks.map(tick) },
      ...units.map((unit, i) => ({
        scale: scaleOf(unit),
        side: i === 0 ? 3 : 1,
        grid: { show: i === 0 },
        label: unit || undefined,
        values: (_u, ticks) => ticks.map((v) => show(v)),
        size: 60,
        ...(integer ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] } : {}),
      })),
    ],
    legend: { live: true },
    hooks: { draw: [(u) => drawMarkers(u, markers)] },
  };
  const plot = new U(opts, [xs, ...series.map((s) => s.values)], box);
  const resize = new ResizeObserver(() => {
    const width = box.clientWidth;
    if (width > 0 && Math.abs(width - plot.width) > 2) plot.setSize({ width, height });
  });
  resize.observe(box);
  return () => {
    resize.disconnect();
    plot.destroy();
    box.remove();
  };
}

function drawMarkers(u, markers) {
  const { ctx, bbox } = u;
  for (const marker of markers) {
    if (!Number.isFinite(marker.at)) continue;
    const x = Math.round(u.valToPos(marker.at, "x", true));
    if (x < bbox.left || x > bbox.left + bbox.width) continue;
    ctx.save();
    ctx.strokeStyle = marker.colour ?? "#c4162a";
    ctx.lineWidth = 2 * (globalThis.devicePixelRatio || 1);
    ctx.setLineDash([6, 4]);
    ctx.beginPath();
    ctx.moveTo(x, bbox.top);
    ctx.lineTo(x, bbox.top + bbox.height);
    ctx.stroke();
    ctx.restore();
  }
}
