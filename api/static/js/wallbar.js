// The wall's controls and overview: the search box and filters (kept in the page's address, so a
// wall can be bookmarked and survives a reload), the KPI tiles and the open alerts per district.

import { download, get } from "./api.js";
import { fmtPercent, h, statusLabel } from "./dom.js";
import { startOfZonedDay, t } from "./i18n.js";
import { districts, enterprises, siteDistrict, siteName } from "./names.js";

export const ACTIVE = ["open", "notified", "acknowledged", "rectification_submitted", "rejected", "escalated"];
// `site` comes from the site map's links (#/wall?site=…): shown as a chip that clears it.
export const FILTER_KEYS = ["q", "enterprise", "district", "code", "status", "tier", "time", "site"];
const TIMES = ["1h", "today", "24h", "7d"];
const HOUR = 3_600_000;

/** The wall's state from the address (`#/wall?tier=1&q=…`). */
export function readState() {
  const query = new URLSearchParams(location.hash.split("?")[1] ?? "");
  const state = {};
  for (const key of FILTER_KEYS) state[key] = query.get(key) ?? "";
  state.compact = query.get("compact") === "1";
  return state;
}

/** Put the state in the address without a navigation (no re-mount, no history entry per key). */
export function writeState(state) {
  const query = new URLSearchParams();
  for (const key of FILTER_KEYS) if (state[key]) query.set(key, state[key]);
  if (state.compact) query.set("compact", "1");
  const text = query.toString();
  const hash = `#/wall${text ? `?${text}` : ""}`;
  if (location.hash !== hash) history.replaceState(history.state, "", hash);
}

/** The instant a time filter starts at, or null. */
export function sinceOf(time, now = Date.now()) {
  if (time === "1h") return new Date(now - HOUR);
  if (time === "24h") return new Date(now - 24 * HOUR);
  if (time === "7d") return new Date(now - 7 * 24 * HOUR);
  if (time === "today") return startOfZonedDay(new Date(now));
  return null;
}

function exportList(state, format) {
  const query = { ...apiQuery(state), lang: document.documentElement.lang === "en" ? "en" : "zh-CN" };
  download(`/api/v1/alerts.${format}`, query, `alerts.${format}`).catch((err) => alert(err.message));
}

/** The list query for the API: every filter it supports, all of them. */
export function apiQuery(state) {
  const since = sinceOf(state.time);
  return {
    status: state.status ? [state.status] : ACTIVE,
    q: state.q.trim() || null,
    enterprise_id: state.enterprise || null,
    district: state.district || null,
    site_id: state.site || null,
    code: state.code || null,
    tier: state.tier || null,
    since: since ? since.toISOString() : null,
  };
}

/** Whether an alert (as the wall holds it) passes the filters that can be judged here. */
export function matches(a, state) {
  if (state.tier && String(a.tier) !== state.tier) return false;
  if (state.enterprise && a.enterprise_id !== state.enterprise) return false;
  if (state.site && a.site_id !== state.site) return false;
  if (state.code && a.code !== state.code) return false;
  if (state.status && a.status !== state.status) return false;
  if (state.district && siteDistrict(a.site_id) !== state.district) return false;
  const since = sinceOf(state.time);
  if (since && new Date(a.created_at ?? 0) < since) return false;
  return true;
}

function select(label, testid, options, value, onchange) {
  const el = h(
    "select",
    { "aria-label": label, title: label, "data-testid": testid, onchange: () => onchange(el.value) },
    h("option", { value: "" }, label),
    options.map(([v, text]) => h("option", { value: v }, text)),
  );
  if (value && !options.some(([v]) => v === value)) el.append(h("option", { value }, value));
  el.value = value;
  return el;
}

/** The search box and filters; `onchange(state)` after each change. */
export function filterBar(state, codes, onchange) {
  const set = (key) => (value) => {
    state[key] = value;
    onchange(state);
  };
  const search = h("input", {
    type: "search",
    value: state.q,
    placeholder: t("wall.search"),
    "aria-label": t("wall.search"),
    "data-testid": "wall-search",
    class: "search",
  });
  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => set("q")(search.value), 400);
  });
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      clearTimeout(typing);
      set("q")(search.value);
    }
  });
  const codeOptions = [...codes].sort(([a], [b]) => a.localeCompare(b)).map(([code, name]) => [code, name]);
  return h(
    "div",
    { class: "filters", "data-testid": "wall-filters" },
    search,
    select(t("filter.enterprise"), "filter-enterprise", enterprises().map((e) => [e.id, e.name]), state.enterprise, set("enterprise")),
    select(t("filter.district"), "filter-district", districts().map((d) => [d, d]), state.district, set("district")),
    select(t("filter.code"), "filter-code", codeOptions, state.code, set("code")),
    select(t("filter.status"), "filter-status", ACTIVE.map((s) => [s, statusLabel(s)]), state.status, set("status")),
    select(t("filter.tier"), "filter-tier", ["1", "2", "3"].map((n) => [n, t(`tier.${n}.badge`)]), state.tier, set("tier")),
    select(t("filter.time"), "filter-time", TIMES.map((v) => [v, t(`filter.time.${v}`)]), state.time, set("time")),
    // The list as filtered, for upward reporting: the export takes exactly the list's filters.
    h("button", { type: "button", class: "ghost", "data-testid": "export-csv", onclick: () => exportList(state, "csv") }, t("wall.export_csv")),
    h("button", { type: "button", class: "ghost", "data-testid": "export-xlsx", onclick: () => exportList(state, "xlsx") }, t("wall.export_xlsx")),
    state.site
      ? h(
          "button",
          { type: "button", class: "ghost selected", "data-testid": "filter-site", title: t("filter.site_clear"), onclick: () => set("site")("") },
          t("filter.site"),
          h("span", { translate: "no" }, siteName(state.site)),
          " ×",
        )
      : null,
  );
}

function tile(key, value, testid, urgent = false) {
  return h(
    "div",
    { class: `kpi${urgent ? " urgent" : ""}`, "data-testid": testid },
    h("div", { class: "kpi-value" }, String(value)),
    h("div", { class: "kpi-label" }, t(key)),
  );
}

/**
 * The KPI tiles: today's alerts by tier (the bureau's calendar day), open and overdue (from the
 * wall's own active alerts), and the rectification rate of the last 30 days (GET /stats).
 */
export async function kpis(box, active, signal) {
  const today = startOfZonedDay();
  const byTier = { 1: 0, 2: 0, 3: 0 };
  let cursor = null;
  for (let page = 0; page < 10; page += 1) {
    const result = await get("alerts", { since: today.toISOString(), limit: 200, cursor }, signal);
    for (const a of result.items) byTier[a.tier] = (byTier[a.tier] ?? 0) + 1;
    cursor = result.next_cursor;
    if (!cursor) break;
  }
  const stats = await get("stats", { group_by: "district" }, signal).catch(() => null);
  const sum = (k) => (stats?.rows ?? []).reduce((n, r) => n + (r[k] ?? 0), 0);
  const rate = sum("violations") ? sum("rectified") / sum("violations") : null;
  const now = Date.now();
  const overdue = active.filter((a) => a.deadline && new Date(a.deadline).getTime() < now && a.status !== "rectification_submitted").length;
  box.replaceChildren(
    tile("kpi.today_tier1", byTier[1], "kpi-tier1", byTier[1] > 0),
    tile("kpi.today_tier2", byTier[2], "kpi-tier2"),
    tile("kpi.today_tier3", byTier[3], "kpi-tier3"),
    tile("kpi.open", active.length, "kpi-open"),
    tile("kpi.overdue", overdue, "kpi-overdue", overdue > 0),
    tile("kpi.rectification_rate", fmtPercent(rate), "kpi-rate"),
  );
}

/** Open alerts per district (sites without one count as unassigned); a click filters by it. */
export function districtCounts(box, active, selected, onpick) {
  const counts = new Map();
  for (const a of active) {
    const d = siteDistrict(a.site_id) ?? "";
    const c = counts.get(d) ?? { total: 0, urgent: 0 };
    c.total += 1;
    if (a.tier === 1) c.urgent += 1;
    counts.set(d, c);
  }
  const rows = [...counts].sort((x, y) => y[1].total - x[1].total || x[0].localeCompare(y[0]));
  box.replaceChildren(
    h("h2", null, t("wall.districts")),
    rows.length
      ? h(
          "ul",
          { class: "district-list" },
          rows.map(([d, c]) =>
            h(
              "li",
              { dataset: { district: d }, "data-testid": "district-count" },
              h(
                "button",
                {
                  type: "button",
                  class: `ghost${selected === d && d ? " selected" : ""}`,
                  disabled: !d,
                  onclick: () => onpick(selected === d ? "" : d),
                },
                d ? h("span", { class: "district-name", translate: "no" }, d) : h("span", { class: "district-name" }, t("wall.no_district")),
                h("span", { class: "district-n" }, String(c.total)),
                c.urgent ? h("span", { class: "badge tier-1" }, String(c.urgent)) : null,
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, t("wall.empty")),
  );
}
