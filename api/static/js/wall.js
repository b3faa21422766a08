// The command-centre wall: every active alert, updated from the stream without a reload, across
// the full width of the screen. KPI tiles and open alerts per district above and beside the list;
// a search box and filters kept in the address; a compact mode for a wall display (one line per
// alert); and for a new tier-1 (urgent) alert a sound and a desktop notification (alarm.js).
// Urgent alerts are red and badged, and flash until an operator acknowledges them.

import * as alarm from "./alarm.js";
import { get, post, seg } from "./api.js";
import {
  alertHref, alertName, fmtAge, fmtTime, h, plain, statusChip, summaryOf, summaryText, tierBadge, valueLabel,
} from "./dom.js";
import { t } from "./i18n.js";
import { subscribe } from "./live.js";
import { enterpriseName, placeOf, siteName } from "./names.js";
import { ACTIVE, apiQuery, districtCounts, filterBar, kpis, matches, readState, writeState } from "./wallbar.js";
import { mapPanel } from "./map.js";
import { wallThumbs } from "./wallthumbs.js";

export { ACTIVE };
const TERMINAL = new Set(["closed", "dismissed"]);
const FRESH_MS = 10_000; // how long a newly arrived alert is outlined
const MAX_PAGES = 5; // 1000 active alerts: beyond that the wall is not the tool
const KPI_EVERY_MS = 60_000;
// What an alert change on the stream carries that the wall shows.
const CHANGE_FIELDS = [
  "alert_id", "enterprise_id", "site_id", "code", "status", "severity", "tier", "summary", "summary_zh", "summary_en",
  "name_zh", "name_en",
];

function compare(a, b) {
  // Urgent alerts nobody has taken first, then newest first.
  const ua = a.tier === 1 && !a.operator_ack_at ? 0 : 1;
  const ub = b.tier === 1 && !b.operator_ack_at ? 0 : 1;
  if (ua !== ub) return ua - ub;
  const ta = new Date(a.created_at ?? 0).getTime();
  const tb = new Date(b.created_at ?? 0).getTime();
  return tb - ta || (a.alert_id < b.alert_id ? 1 : -1);
}

/** Whether an alert's own words (either language), names or code contain `q`. */
function textMatch(a, q) {
  const hay = [a.summary, a.summary_zh, a.summary_en, a.name_zh, a.name_en, a.code, a.alert_id,
    enterpriseName(a.enterprise_id), siteName(a.site_id)];
  return hay.some((v) => typeof v === "string" && v.toLowerCase().includes(q));
}

export async function mount(container, ctx) {
  const alerts = new Map(); // alert_id → alert (full record, or partial from a change)
  const rendered = new Map(); // alert_id → {el, alert, fresh}
  const fresh = new Map(); // alert_id → when it arrived on the stream
  const fromSearch = new Set(); // ids the API found for the search (it also searches notes)
  const codes = new Map(); // code → name, for the code filter
  const state = readState();
  let loading = true;
  const touchedWhileLoading = new Set();

  const list = h("div", { class: `wall${state.compact ? " compact" : ""}`, "data-testid": "wall" });
  const empty = h("p", { class: "empty", "data-testid": "wall-empty" }, t("wall.empty"));
  const count = h("span", { class: "count", "data-testid": "wall-count" }, t("common.loading"));
  const kpiBox = h("section", { class: "kpis", "data-testid": "kpis", "aria-label": t("wall.kpis") });
  const districtBox = h("aside", { class: "panel districts", "data-testid": "districts" });
  const mapBox = h("aside", { class: "panel wall-map", "data-testid": "wall-map" });
  const filterSlot = h("div", { class: "filter-slot" });
  const thumbBox = h("section", { class: "wall-thumbs", "data-testid": "wall-thumbs", "aria-label": t("thumbs.title") });
  const showThumbs = wallThumbs(thumbBox, ctx); // streams stop with the wall (ctx.onCleanup)

  const compactButton = h("button", { type: "button", class: "ghost", "data-testid": "wall-compact", "aria-pressed": String(state.compact) });
  const muteButton = h("button", { type: "button", class: "ghost", "data-testid": "wall-mute" });
  const notifyButton = h("button", { type: "button", class: "ghost", "data-testid": "wall-notify" });
  const soundState = h("span", { class: "muted sound-state", "data-testid": "sound-state" });
  function paintSwitches() {
    compactButton.textContent = t(state.compact ? "wall.comfortable" : "wall.compact");
    compactButton.setAttribute("aria-pressed", String(state.compact));
    const muted = alarm.isMuted();
    muteButton.textContent = t(muted ? "wall.unmute" : "wall.mute");
    muteButton.setAttribute("aria-pressed", String(muted));
    notifyButton.hidden = !alarm.notificationsSupported() || alarm.notificationsAllowed();
    notifyButton.textContent = t("wall.notify");
    soundState.textContent = muted ? t("wall.sound_muted") : alarm.audioArmed() ? t("wall.sound_on") : t("wall.sound_arm");
  }
  compactButton.addEventListener("click", () => {
    state.compact = !state.compact;
    list.classList.toggle("compact", state.compact);
    writeState(state);
    paintSwitches();
  });
  muteButton.addEventListener("click", () => {
    alarm.setMuted(!alarm.isMuted());
    paintSwitches();
  });
  notifyButton.addEventListener("click", async () => {
    await alarm.askNotifications();
    paintSwitches();
  });
  ctx.onCleanup(alarm.armOnGesture(paintSwitches));
  paintSwitches();

  function onFilters() {
    writeState(state);
    loadAll().catch(reportError);
  }
  let paintedCodes = -1;
  function paintFilters(force = false) {
    // Not while someone types in the search box: a new box would take the focus away.
    const typing = filterSlot.contains(document.activeElement) && document.activeElement.type === "search";
    if (!force && (typing || paintedCodes === codes.size)) return;
    paintedCodes = codes.size;
    filterSlot.replaceChildren(filterBar(state, codes, onFilters));
  }

  container.append(
    h(
      "div",
      { class: "toolbar wall-toolbar" },
      h("h1", null, t("nav.wall")),
      filterSlot,
      h("span", { class: "switches" }, compactButton, muteButton, notifyButton, soundState),
      count,
    ),
    kpiBox,
    thumbBox,
    h("div", { class: "wall-body" }, list, h("div", { class: "wall-side" }, districtBox, mapBox)),
  );
  mapPanel(mapBox, ctx); // its own loading and errors: the alert list never waits for the map

  function reportError(err) {
    if (err?.name !== "AbortError" && err?.status !== 401) ctx.banner(t("error.reload", { error: err.message }), "error");
  }

  // --- refreshing one alert from the API, coalesced per id ---------------------------------
  const inflight = new Set();
  const dirty = new Set();
  async function refresh(id) {
    if (inflight.has(id)) {
      dirty.add(id);
      return;
    }
    inflight.add(id);
    try {
      const alert = await get(`alerts/${seg(id)}`, null, ctx.signal);
      if (TERMINAL.has(alert.status)) alerts.delete(id);
      else alerts.set(id, alert);
      render();
    } catch (err) {
      if (err?.status === 404) {
        alerts.delete(id);
        render();
      }
    } finally {
      inflight.delete(id);
      if (dirty.delete(id) && !ctx.signal.aborted) refresh(id);
    }
  }

  // --- the stream --------------------------------------------------------------------------
  ctx.onCleanup(
    subscribe((change) => {
      if (change.type === "reset") {
        loadAll().catch(() => {});
        return;
      }
      const id = change.alert_id;
      if (typeof id !== "string") return;
      if (loading) touchedWhileLoading.add(id);
      if (TERMINAL.has(change.status)) {
        alerts.delete(id);
        render();
        return;
      }
      const existing = alerts.get(id);
      const patch = {};
      for (const key of CHANGE_FIELDS) if (key in change) patch[key] = change[key];
      if (!existing) {
        fresh.set(id, Date.now());
        if (change.tier === 1 && !loading) {
          alarm.raise({
            alertId: id,
            title: t("alarm.title", { name: alertName(change) }),
            body: `${placeOf(change)} · ${summaryText(change)}`,
            onClick: () => (location.hash = alertHref(id)),
          });
        }
        const at = Number.isFinite(change.at) ? new Date(change.at).toISOString() : new Date().toISOString();
        alerts.set(id, { operator_ack_at: null, created_at: at, ...patch });
      } else {
        alerts.set(id, { ...existing, ...patch });
      }
      render();
      scheduleKpis();
      refresh(id); // the change carries the headline; the API has the rest (assignee, ack …)
    }),
  );

  // --- operator acknowledgement ------------------------------------------------------------
  async function acknowledge(id, button) {
    button.disabled = true;
    try {
      const alert = await post(`alerts/${seg(id)}/ack`, {}, ctx.signal);
      alerts.set(id, alert);
      render();
    } catch (err) {
      button.disabled = false;
      if (err?.name !== "AbortError") ctx.banner(t("action.failed", { action: t("action.ack"), error: err.message }), "error");
    }
  }

  // --- rendering ---------------------------------------------------------------------------
  function card(a, isFresh) {
    const unacked = !a.operator_ack_at;
    const classes = ["alert-card", unacked ? "unacked" : "", isFresh ? "fresh" : ""].filter(Boolean).join(" ");
    const side = [];
    if (unacked) {
      const button = h(
        "button",
        { type: "button", class: a.tier === 1 ? "ack" : "", "data-testid": "ack", title: t("wall.ack_title") },
        t("action.ack"),
      );
      button.addEventListener("click", () => acknowledge(a.alert_id, button));
      side.push(button);
    } else {
      side.push(h("span", { class: "acked", "data-testid": "acked" }, "✓ ", a.operator_ack_by ? plain(a.operator_ack_by) : t("wall.acked")));
    }
    side.push(h("a", { class: "button ghost", href: alertHref(a.alert_id), "data-testid": "open" }, t("wall.open")));
    const source = a.source_id ? [" · ", valueLabel("source", a.source_kind), " ", plain(a.source_id)] : null;
    const handler = a.assignee ? [" · ", t("wall.handler"), " ", plain(a.assignee), a.assigned_slot ? ` (${a.assigned_slot})` : ""] : null;
    return h(
      "article",
      {
        class: classes,
        dataset: { tier: String(a.tier), alertId: a.alert_id, status: a.status },
        "data-testid": "alert-card",
      },
      h(
        "div",
        { class: "badges" },
        tierBadge(a.tier),
        a.severity ? severityBadge(a.severity) : null,
        a.tier === 1 && unacked ? h("span", { class: "badge tier-1 new", "data-testid": "needs-ack" }, t("wall.new")) : null,
      ),
      h("div", { class: "title" }, h("a", { href: alertHref(a.alert_id) }, alertName(a)), " ", statusChip(a.status)),
      h("div", { class: "summary" }, summaryOf(a, { "data-testid": "summary" })),
      h(
        "div",
        { class: "meta" },
        h("span", { class: "place", "data-testid": "place", translate: "no" }, placeOf(a)),
        source,
        " · ",
        h("span", { class: "when" }, `${fmtTime(a.created_at)} (${fmtAge(a.created_at)})`),
        handler,
      ),
      h("div", { class: "side" }, side),
    );
  }

  function visible(a) {
    if (!matches(a, state)) return false;
    const q = state.q.trim().toLowerCase();
    return !q || fromSearch.has(a.alert_id) || textMatch(a, q);
  }

  function render(force = false) {
    const now = Date.now();
    const shown = [...alerts.values()].filter(visible).sort(compare);
    const keep = new Set(shown.map((a) => a.alert_id));
    for (const [id, r] of rendered) {
      if (!keep.has(id)) {
        r.el.remove();
        rendered.delete(id);
      }
    }
    let previous = null;
    for (const a of shown) {
      const isFresh = now - (fresh.get(a.alert_id) ?? 0) < FRESH_MS;
      let r = rendered.get(a.alert_id);
      if (!r || force || r.alert !== a || r.fresh !== isFresh) {
        const el = card(a, isFresh);
        if (r) r.el.replaceWith(el);
        r = { el, alert: a, fresh: isFresh };
        rendered.set(a.alert_id, r);
      }
      const expected = previous ? previous.nextSibling : list.firstChild;
      if (r.el !== expected) list.insertBefore(r.el, expected);
      previous = r.el;
    }
    showThumbs(shown); // what the operator sees, filters included
    if (!shown.length) list.append(empty);
    else empty.remove();
    const all = [...alerts.values()];
    const urgent = all.filter((a) => a.tier === 1 && !a.operator_ack_at).length;
    count.textContent = loading
      ? t("common.loading")
      : t("wall.count", { active: alerts.size, urgent }) + (shown.length !== alerts.size ? t("wall.count_shown", { n: shown.length }) : "");
    document.title = urgent ? t("wall.title_urgent", { n: urgent }) : t("wall.title");
    districtCounts(districtBox, shown, state.district, (d) => {
      state.district = d;
      paintFilters(true);
      onFilters();
    });
  }

  let kpiTimer = null;
  function scheduleKpis(delay = 3000) {
    clearTimeout(kpiTimer);
    kpiTimer = setTimeout(() => {
      kpis(kpiBox, [...alerts.values()], ctx.signal).catch(reportError);
      scheduleKpis(KPI_EVERY_MS);
    }, delay);
  }
  ctx.onCleanup(() => clearTimeout(kpiTimer));

  const ticker = setInterval(() => {
    for (const [id, t] of fresh) if (Date.now() - t > FRESH_MS) fresh.delete(id);
    render(true); // ages ("3 min ago") move on
  }, 30_000);
  const unfresh = setInterval(() => {
    if ([...fresh.values()].some((t) => Date.now() - t >= FRESH_MS)) {
      render();
      for (const [id, t] of fresh) if (Date.now() - t >= FRESH_MS) fresh.delete(id);
    }
  }, 2000);
  ctx.onCleanup(() => {
    clearInterval(ticker);
    clearInterval(unfresh);
    document.title = t("app.title");
  });

  // --- loading every active alert (at start, and when the stream had to start afresh) --------
  let loadGeneration = 0;
  async function loadAll() {
    const generation = (loadGeneration += 1);
    loading = true;
    touchedWhileLoading.clear();
    const loaded = new Map();
    let cursor = null;
    const query = apiQuery(state);
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const result = await get("alerts", { ...query, limit: 200, cursor }, ctx.signal);
      for (const a of result.items) loaded.set(a.alert_id, a);
      cursor = result.next_cursor;
      if (!cursor) break;
    }
    if (generation !== loadGeneration) return; // the filters changed meanwhile: a newer load runs
    // A change that arrived during the load may be newer than its page: the refresh settles it.
    for (const [id, a] of alerts) if (touchedWhileLoading.has(id)) loaded.set(id, a);
    alerts.clear();
    fromSearch.clear();
    for (const [id, a] of loaded) {
      alerts.set(id, a);
      if (query.q) fromSearch.add(id);
      if (!codes.has(a.code)) codes.set(a.code, alertName(a));
    }
    loading = false;
    paintFilters();
    render();
    scheduleKpis(0);
    for (const id of touchedWhileLoading) refresh(id);
  }

  await loadAll();
}

/** A severity the catalogue names, else the stored value itself, marked as data (not our words). */
function severityBadge(severity) {
  const label = valueLabel("severity", severity);
  const attrs = { class: `badge sev-${severity}` };
  if (label === String(severity)) attrs.translate = "no";
  return h("span", attrs, label);
}
