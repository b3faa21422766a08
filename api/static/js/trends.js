// Trends of the supervision statistics (GET /api/v1/stats?group_by=period): violations and
// warnings per period, and the rectification and false-alarm rates.

import { get } from "./api.js";
import { timeChart } from "./charts.js";
import { fill, fmtPercent, h } from "./dom.js";
import { t } from "./i18n.js";

const RANGES = ["7", "30", "90", "365"];

export async function mount(container, ctx) {
  const charts = [];
  const destroyCharts = () => charts.splice(0).forEach((d) => d());
  ctx.onCleanup(destroyCharts);

  const period = h(
    "select",
    { "aria-label": t("trends.period") },
    ["day", "week", "month"].map((v) => h("option", { value: v }, t(`trends.by.${v}`))),
  );
  const range = h("select", { "aria-label": t("trends.range") }, RANGES.map((v) => h("option", { value: v }, t(`trends.range.${v}`))));
  range.value = "30";
  const counts = h("section", { class: "panel" });
  const rates = h("section", { class: "panel" });
  const table = h("section", { class: "panel" });
  container.append(h("div", { class: "toolbar" }, h("h1", null, t("nav.trends")), range, period), counts, rates, table);

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
    fill(counts, h("h2", null, t("trends.counts")));
    fill(rates, h("h2", null, t("trends.rates")));
    rates.hidden = table.hidden = !stats.rows.length;
    if (!stats.rows.length) {
      counts.append(h("p", { class: "empty" }, t("trends.empty")));
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
          { label: t("trends.s.violations"), values: rows.map((r) => r.violations) },
          { label: t("trends.s.warnings"), values: rows.map((r) => r.warnings) },
          { label: t("trends.s.penalty_cases"), values: rows.map((r) => r.penalty_cases) },
          { label: t("trends.s.false_alarms"), values: rows.map((r) => r.false_alarms) },
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
          { label: t("trends.s.rectification_rate"), values: rows.map((r) => pct(r.rectification_rate)) },
          { label: t("trends.s.false_alarm_rate"), values: rows.map((r) => pct(r.false_alarm_rate)) },
          { label: t("trends.s.repeat_offence_rate"), values: rows.map((r) => pct(r.repeat_offence_rate)) },
        ],
      }),
    );
    const columns = [
      ["period", (r) => r.key],
      ["alerts", (r) => r.alerts],
      ["violations", (r) => r.violations],
      ["warnings", (r) => r.warnings],
      ["penalty_cases", (r) => r.penalty_cases],
      ["rectified", (r) => r.rectified],
      ["rectification_rate", (r) => fmtPercent(r.rectification_rate)],
      ["mean_hours", (r) => (r.mean_hours_to_rectify === null ? "—" : r.mean_hours_to_rectify.toFixed(1))],
      ["false_alarms", (r) => r.false_alarms],
      ["false_alarm_rate", (r) => fmtPercent(r.false_alarm_rate)],
    ];
    fill(
      table,
      h("h2", null, t("trends.figures")),
      h(
        "table",
        { "data-testid": "trend-table" },
        h("thead", null, h("tr", null, columns.map(([key]) => h("th", null, t(`trends.col.${key}`))))),
        h("tbody", null, stats.rows.map((r) => h("tr", null, columns.map(([, f]) => h("td", null, String(f(r))))))),
      ),
    );
  }

  const reload = () => load().catch((err) => err?.name !== "AbortError" && ctx.banner(t("trends.error", { error: err.message }), "error"));
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
