// The sensor trace of a telemetry alert as chart series: one per metric with its unit, and the
// limit the alert crossed drawn as a dashed line on that metric's axis.

import { fmtTime } from "./dom.js";
import { t, tOr } from "./i18n.js";

/**
 * The trace endpoint's answer (`{series: {metric: [[ts_ms, value], …]}, start_ms, end_ms,
 * bucket_ms, truncated}`) as uPlot columns: one shared time axis (seconds), one series per metric,
 * null where a metric has no reading at a time another has. Also takes `{series: [{metric,
 * points}]}`; thresholds (`thresholds: {metric: number | {min, max}}`), if a trace carries them,
 * become dashed lines.
 */
export function traceSeries(data) {
  const notes = [];
  let named = [];
  const raw = data?.series ?? {};
  if (Array.isArray(raw)) {
    named = raw.map((s) => [s.metric ?? s.name ?? s.label ?? "value", s.points ?? s.values ?? []]);
  } else if (raw && typeof raw === "object") {
    named = Object.entries(raw);
  }
  const times = new Set();
  const maps = named.map(([name, points]) => {
    const m = new Map();
    for (const p of points ?? []) {
      const [ts, v] = Array.isArray(p) ? p : [p.ts ?? p.t, p.value ?? p.v];
      const ms = typeof ts === "string" ? new Date(ts).getTime() : Number(ts);
      if (!Number.isFinite(ms)) continue;
      times.add(ms);
      m.set(ms, v === null || v === undefined ? null : Number(v));
    }
    return [name, m];
  });
  const sorted = [...times].sort((a, b) => a - b);
  const xs = sorted.map((ms) => ms / 1000);
  const series = maps.map(([name, m]) => ({
    label: metricLabel(name),
    unit: unitOf(name),
    values: sorted.map((ms) => (m.has(ms) ? m.get(ms) : null)),
    points: false,
  }));
  // Threshold lines, when the trace says what the limit was.
  const thresholds = data?.thresholds ?? data?.limits ?? null;
  if (thresholds && typeof thresholds === "object" && xs.length) {
    for (const [metric, limit] of Object.entries(thresholds)) {
      const bounds = typeof limit === "number" ? { limit } : limit && typeof limit === "object" ? limit : {};
      for (const [which, value] of Object.entries(bounds)) {
        if (typeof value !== "number") continue;
        series.push({
          label: tOr(`trace.limit.${which}`, `${metricLabel(metric)} ${which}`, { metric: metricLabel(metric) }),
          unit: unitOf(metric),
          values: sorted.map(() => value),
          dash: [6, 4],
          colour: "#c4162a",
          points: false,
        });
      }
    }
  }
  if (Number.isFinite(data?.start_ms) && Number.isFinite(data?.end_ms)) {
    notes.push(t("trace.window", { device: data.device_id ?? "—", from: fmtTime(data.start_ms), to: fmtTime(data.end_ms) }));
  }
  if (data?.bucket_ms) notes.push(t("trace.bucket", { s: Math.round(data.bucket_ms / 1000) }));
  if (data?.truncated) notes.push(t("trace.truncated"));
  return { xs, series, notes };
}

// Units of the metrics devices report (symbols, not words: the same in every language).
const UNITS = { temperature: "℃", humidity: "%", pressure: "MPa", co: "ppm", co2: "ppm", gas: "%LEL", oil_temp: "℃" };
const unitOf = (metric) => UNITS[metric] ?? UNITS[String(metric).split(/[._]/)[0]] ?? "";
const metricLabel = (metric) => tOr(`metric.${metric}`, String(metric));
