// Trends of the supervision statistics (GET /api/v1/stats?group_by=period): violations and
// warnings per period, and the rectification and false-alarm rates.

import { get } from "./api.js";
import { timeChart } from "./charts.js";
import { fill, fmtPercent, h } from "./dom.js";

const RANGES = [
  ["7", "Last 7 days"],
  ["30", "Last 30 days"],
  ["90", "Last 90 days"],
  ["365", "Last year"],
];

export async function mount(container, ctx) {
  const charts = [];
  const destroyCharts = () => charts.splice(0).forEach((d) => d());
  ctx.onCleanup(destroyCharts);

  const period = h(
    "select",
    { "aria-label": "Period" },
    h("option", { value: "day" }, "By day"),
    h("option", { value: "week" }, "By week"),
    h("option", { value: "month" }, "By month"),
  );
  const range = h("select", { "aria-label": "Range" }, RANGES.map(([v, label]) => h("option", { value: v }, label)));
  range.value = "30";
  const counts = h("section", { class: "panel" });
  const rates = h("section", { class: "panel" });
  const table = h("section", { class: "panel" });
  container.append(h("div", { class: "toolbar" }, h("h1", null, "Trends"), range, period), counts, rates, table);

  async function load() {
    const until = new Date();
    const since = new Date(until.getTime() - Number(range.value) * 86_400_000);
    const stats = await get(
      "stats",
      { group_by: "period", period: period.value, since: since.toISOString(), until: until.toISOString() },
      ctx.signal,
    );
    destroyCharts();
    const rows = period.value === "day" ? everyDay(stats.rows, since, until) : [...stats.rows].sort((a, b) => (a.key < b.key ? -1 : 1));
    const xRange = [since.getTime() / 1000, until.getTime() / 1000];
    const xs = rows.map((r) => new Date(`${r.key}T00:00:00Z`).getTime() / 1000);
    fill(counts, h("h2", null, "Violations and warnings"));
    fill(rates, h("h2", null, "Rectification and false-alarm rates"));
    rates.hidden = table.hidden = !stats.rows.length;
    if (!stats.rows.length) {
      counts.append(h("p", { class: "empty" }, "No alerts in this range."));
      return;
    }
    charts.push(
      timeChart(counts, {
        xs,
        xRange,
        testid: "trend-counts",
        integer: true,
        format: (v) => v.toFixed(0),
        series: [
          { label: "violations", values: rows.map((r) => r.violations) },
          { label: "warnings", values: rows.map((r) => r.warnings) },
          { label: "penalty cases", values: rows.map((r) => r.penalty_cases) },
          { label: "false alarms", values: rows.map((r) => r.false_alarms) },
        ],
      }),
    );
    const pct = (v) => (v === null || v === undefined ? null : v * 100);
    charts.push(
      timeChart(rates, {
        xs,
        xRange,
        testid: "trend-rates",
        yRange: [0, 100],
        format: (v) => `${v.toFixed(0)}%`,
        series: [
          { label: "rectification rate", values: rows.map((r) => pct(r.rectification_rate)) },
          { label: "false-alarm rate", values: rows.map((r) => pct(r.false_alarm_rate)) },
          { label: "repeat-offence rate", values: rows.map((r) => pct(r.repeat_offence_rate)) },
        ],
      }),
    );
    const columns = [
      ["Period", (r) => r.key],
      ["Alerts", (r) => r.alerts],
      ["Violations", (r) => r.violations],
      ["Warnings", (r) => r.warnings],
      ["Penalty cases", (r) => r.penalty_cases],
      ["Rectified", (r) => r.rectified],
      ["Rectification rate", (r) => fmtPercent(r.rectification_rate)],
      ["Mean hours to rectify", (r) => (r.mean_hours_to_rectify === null ? "—" : r.mean_hours_to_rectify.toFixed(1))],
      ["False alarms", (r) => r.false_alarms],
      ["False-alarm rate", (r) => fmtPercent(r.false_alarm_rate)],
    ];
    fill(
      table,
      h("h2", null, "Figures"),
      h(
        "table",
        { "data-testid": "trend-table" },
        h("thead", null, h("tr", null, columns.map(([t]) => h("th", null, t)))),
        h("tbody", null, stats.rows.map((r) => h("tr", null, columns.map(([, f]) => h("td", null, String(f(r))))))),
      ),
    );
  }

  const reload = () => load().catch((err) => err?.name !== "AbortError" && ctx.banner(`Statistics: ${err.message}`, "error"));
  period.addEventListener("change", reload);
  range.addEventListener("change", reload);
  await load();
}

/** One row per UTC day from `since` to `until`: a day without alerts counts 0, its rates are unknown. */
function everyDay(rows, since, until) {
  const byKey = new Map(rows.map((r) => [r.key, r]));
  const out = [];
  const day = new Date(Date.UTC(since.getUTCFullYear(), since.getUTCMonth(), since.getUTCDate()));
  for (; day <= until; day.setUTCDate(day.getUTCDate() + 1)) {
    const key = day.toISOString().slice(0, 10);
    out.push(
      byKey.get(key) ?? {
        key, alerts: 0, violations: 0, warnings: 0, penalty_cases: 0, rectified: 0, false_alarms: 0,
        rectification_rate: null, false_alarm_rate: null, repeat_offence_rate: null, mean_hours_to_rectify: null,
      },
    );
  }
  return out;
}
