// Per-site status: cameras and devices online or offline, open alerts by tier, the handlers.
// Refreshed when an alert changes (an offline camera is an alert) and every 30 s.

import { get } from "./api.js";
import { fill, h, plain } from "./dom.js";
import { t } from "./i18n.js";
import { enterpriseName } from "./names.js";
import { subscribe } from "./live.js";
import { liveButton } from "./camview.js";
import { publicWindowButton } from "./publicwindow.js";

const MAX_PAGES = 10;

function sources(kind, items, idKey) {
  const online = items.filter((i) => i.online && i.enabled !== false).length;
  const offline = items.filter((i) => !i.online && i.enabled !== false);
  const disabled = items.filter((i) => i.enabled === false).length;
  return h(
    "div",
    { "data-testid": `site-${kind}` },
    h("strong", null, t(`sites.${kind}`)),
    t("sites.colon"),
    h("span", { class: "online" }, t("sites.online_count", { n: online })),
    " · ",
    h("span", { class: offline.length ? "offline" : "muted" }, t("sites.offline_count", { n: offline.length })),
    disabled ? h("span", { class: "muted" }, t("sites.disabled_count", { n: disabled })) : null,
    items.length
      ? h(
          "ul",
          null,
          items.map((i) =>
            h(
              "li",
              { dataset: { online: String(i.online) } },
              h("span", { class: `dot ${i.enabled === false ? "" : i.online ? "on" : "off"}`, "aria-hidden": "true" }),
              plain(i[idKey]),
              i.profile ? h("span", { class: "muted", translate: "no" }, ` (${i.profile})`) : null,
              i.enabled === false ? h("span", { class: "muted" }, t("sites.disabled")) : i.online ? "" : h("span", { class: "offline" }, t("sites.offline")),
              kind === "cameras" && i.enabled !== false ? [" ", liveButton(i[idKey])] : null,
            ),
          ),
        )
      : null,
  );
}

function siteCard(s, banner) {
  const handlers = ["A", "B", "C"]
    .map((slot) =>
      s.handlers?.[slot] ? t(s.handlers[slot].away ? "handler.slot_away" : "handler.slot", { slot, name: s.handlers[slot].name }) : null,
    )
    .filter(Boolean)
    .join(" · ");
  const open = s.open_alerts ?? { total: 0, tier_1: 0, tier_2: 0, tier_3: 0 };
  return h(
    "article",
    { class: "panel site-card", "data-testid": "site-card", dataset: { siteId: s.site_id } },
    h("h2", { translate: "no" }, s.name),
    h("p", { class: "muted", translate: "no" }, `${enterpriseName(s.enterprise_id)}${s.district ? ` · ${s.district}` : ""}`),
    h(
      "p",
      null,
      h("span", { "data-testid": "site-open" }, t("sites.open_alerts", { n: open.total })),
      open.tier_1 ? h("span", { class: "badge tier-1" }, t("sites.urgent_count", { n: open.tier_1 })) : null,
      open.tier_2 ? t("sites.tier_count", { tier: 2, n: open.tier_2 }) : null,
      open.tier_3 ? t("sites.tier_count", { tier: 3, n: open.tier_3 }) : null,
    ),
    sources("cameras", s.cameras ?? [], "camera_id"),
    sources("devices", s.devices ?? [], "device_id"),
    handlers ? h("p", { class: "muted" }, t("sites.handlers"), plain(handlers)) : null,
    h("div", { class: "actions" }, publicWindowButton(s.site_id, banner)),
  );
}

export async function mount(container, ctx) {
  const grid = h("div", { class: "sites", "data-testid": "sites" });
  const filter = h("input", { type: "search", placeholder: t("sites.filter"), "aria-label": t("sites.filter") });
  const summary = h("span", { class: "count" });
  container.append(h("div", { class: "toolbar" }, h("h1", null, t("nav.sites")), filter, summary), grid);
  let all = [];

  function render() {
    const q = filter.value.trim().toLowerCase();
    const shown = all.filter(
      (s) => !q || [s.site_id, s.name, s.enterprise_id, enterpriseName(s.enterprise_id), s.district ?? ""].some((v) => v.toLowerCase().includes(q)),
    );
    // Sites with something offline or urgent first.
    const weight = (s) =>
      -((s.open_alerts?.tier_1 ?? 0) * 100 +
        [...(s.cameras ?? []), ...(s.devices ?? [])].filter((i) => !i.online && i.enabled !== false).length);
    shown.sort((a, b) => weight(a) - weight(b) || a.site_id.localeCompare(b.site_id));
    fill(grid, shown.length ? shown.map((s) => siteCard(s, ctx.banner)) : h("p", { class: "empty" }, t("sites.empty")));
    const offline = all.reduce(
      (n, s) => n + [...(s.cameras ?? []), ...(s.devices ?? [])].filter((i) => !i.online && i.enabled !== false).length,
      0,
    );
    summary.textContent = t("sites.summary", { sites: all.length, offline });
  }
  filter.addEventListener("input", render);

  async function load() {
    const items = [];
    let cursor = null;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const result = await get("sites/status", { limit: 500, cursor }, ctx.signal);
      items.push(...result.items);
      cursor = result.next_cursor;
      if (!cursor) break;
    }
    all = items;
    render();
  }

  let pending = null;
  const reload = () => {
    clearTimeout(pending);
    pending = setTimeout(() => load().catch(() => {}), 1000);
  };
  ctx.onCleanup(subscribe(reload));
  const timer = setInterval(reload, 30_000);
  ctx.onCleanup(() => {
    clearInterval(timer);
    clearTimeout(pending);
  });
  await load();
}
