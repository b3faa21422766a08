// The live alert wall: every active alert, updated from the stream without a reload. Tier-1
// (urgent) alerts are red and badged, and flash until an operator acknowledges them.

import { get, post, seg } from "./api.js";
import { alertHref, alertName, fmtAge, fmtTime, h, statusChip, tierBadge } from "./dom.js";
import { subscribe } from "./live.js";

export const ACTIVE = ["open", "notified", "acknowledged", "rectification_submitted", "rejected", "escalated"];
const TERMINAL = new Set(["closed", "dismissed"]);
const FRESH_MS = 10_000; // how long a newly arrived alert is outlined
const MAX_PAGES = 5; // 1000 active alerts: beyond that the wall is not the tool
// What an alert change on the stream carries that the wall shows.
const CHANGE_FIELDS = ["alert_id", "enterprise_id", "site_id", "code", "status", "severity", "tier", "summary"];

function compare(a, b) {
  // Urgent alerts nobody has taken first, then newest first.
  const ua = a.tier === 1 && !a.operator_ack_at ? 0 : 1;
  const ub = b.tier === 1 && !b.operator_ack_at ? 0 : 1;
  if (ua !== ub) return ua - ub;
  const ta = new Date(a.created_at ?? 0).getTime();
  const tb = new Date(b.created_at ?? 0).getTime();
  return tb - ta || (a.alert_id < b.alert_id ? 1 : -1);
}

export async function mount(container, ctx) {
  const alerts = new Map(); // alert_id → alert (full record, or partial from a change)
  const rendered = new Map(); // alert_id → {el, alert, fresh}
  const fresh = new Map(); // alert_id → when it arrived on the stream
  const filters = { tier: "", unacked: false };
  let loading = true;
  const touchedWhileLoading = new Set();

  const list = h("div", { class: "wall", "data-testid": "wall" });
  const empty = h("p", { class: "empty", "data-testid": "wall-empty" }, "No active alerts.");
  const count = h("span", { class: "count", "data-testid": "wall-count" }, "loading…");
  const tierSelect = h(
    "select",
    { "aria-label": "Tier", onchange: () => { filters.tier = tierSelect.value; render(); } },
    h("option", { value: "" }, "All tiers"),
    h("option", { value: "1" }, "Urgent (tier 1)"),
    h("option", { value: "2" }, "Tier 2"),
    h("option", { value: "3" }, "Tier 3"),
  );
  const unackedBox = h("input", {
    type: "checkbox",
    id: "wall-unacked",
    onchange: () => { filters.unacked = unackedBox.checked; render(); },
  });
  container.append(
    h(
      "div",
      { class: "toolbar" },
      h("h1", null, "Alert wall"),
      tierSelect,
      h("span", null, unackedBox, " ", h("label", { for: "wall-unacked" }, "Not yet acknowledged only")),
      count,
    ),
    list,
  );

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
        const at = Number.isFinite(change.at) ? new Date(change.at).toISOString() : new Date().toISOString();
        alerts.set(id, { operator_ack_at: null, created_at: at, ...patch });
      } else {
        alerts.set(id, { ...existing, ...patch });
      }
      render();
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
      if (err?.name !== "AbortError") ctx.banner(`Acknowledge failed: ${err.message}`, "error");
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
        { type: "button", class: a.tier === 1 ? "ack" : "", "data-testid": "ack", title: "I have it" },
        "Acknowledge",
      );
      button.addEventListener("click", () => acknowledge(a.alert_id, button));
      side.push(button);
    } else {
      side.push(h("span", { class: "acked", "data-testid": "acked" }, `✓ ${a.operator_ack_by ?? "acknowledged"}`));
    }
    side.push(h("a", { class: "button ghost", href: alertHref(a.alert_id) }, "Open"));
    const source = a.source_id ? ` · ${a.source_kind} ${a.source_id}` : "";
    const handler = a.assignee ? ` · handler ${a.assignee}${a.assigned_slot ? ` (${a.assigned_slot})` : ""}` : "";
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
        a.severity ? h("span", { class: `badge sev-${a.severity}` }, a.severity) : null,
        a.tier === 1 && unacked ? h("span", { class: "badge tier-1", "data-testid": "needs-ack" }, "NEW") : null,
      ),
      h("div", { class: "title" }, h("a", { href: alertHref(a.alert_id) }, alertName(a)), " ", statusChip(a.status)),
      h("div", { class: "summary", "data-testid": "summary" }, a.summary ?? ""),
      h(
        "div",
        { class: "meta" },
        `${a.enterprise_id} / ${a.site_id}${source} · ${fmtTime(a.created_at)} (${fmtAge(a.created_at)})${handler}`,
      ),
      h("div", { class: "side" }, side),
    );
  }

  function visible(a) {
    if (filters.tier && String(a.tier) !== filters.tier) return false;
    if (filters.unacked && a.operator_ack_at) return false;
    return true;
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
    if (!shown.length) list.append(empty);
    else empty.remove();
    const urgent = [...alerts.values()].filter((a) => a.tier === 1 && !a.operator_ack_at).length;
    count.textContent = loading
      ? "loading…"
      : `${alerts.size} active · ${urgent} urgent awaiting acknowledgement` +
        (shown.length !== alerts.size ? ` · ${shown.length} shown` : "");
    document.title = urgent ? `(${urgent}) Vigil — alert wall` : "Vigil — alert wall";
  }

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
    document.title = "Vigil";
  });

  // --- loading every active alert (at start, and when the stream had to start afresh) --------
  async function loadAll() {
    loading = true;
    touchedWhileLoading.clear();
    const loaded = new Map();
    let cursor = null;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const result = await get("alerts", { status: ACTIVE, limit: 200, cursor }, ctx.signal);
      for (const a of result.items) loaded.set(a.alert_id, a);
      cursor = result.next_cursor;
      if (!cursor) break;
    }
    // A change that arrived during the load may be newer than its page: the refresh settles it.
    for (const [id, a] of alerts) if (touchedWhileLoading.has(id)) loaded.set(id, a);
    alerts.clear();
    for (const [id, a] of loaded) alerts.set(id, a);
    loading = false;
    render();
    for (const id of touchedWhileLoading) refresh(id);
  }

  await loadAll();
}
