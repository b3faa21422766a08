// The site map (#/map) and the wall's compact map panel: every placed site as a dot coloured by
// its worst open alert (tier 1 red, 2 orange, 3 yellow, none green), grouped into clusters when
// zoomed out, on the bureau's own district boundaries.
//
// Government networks are closed: the base layer is the districts' GeoJSON from the API
// (GET /map/districts), with raster tiles only when the bureau configured its own tile server
// (GET /map/config). Leaflet and Leaflet.markercluster are vendored (window.L, loaded by
// index.html); nothing is fetched from anywhere else.

import { get } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { enterpriseName } from "./names.js";
import { subscribe } from "./live.js";

const TIERS = ["1", "2", "3", "none"];
const RELOAD_MS = 1000; // alert changes arrive in bursts: one reload per burst
const REFRESH_MS = 60_000;

/** A site's colour class: its most urgent open alert's tier, or "none". */
export function tierOf(site) {
  return site.worst_tier >= 1 && site.worst_tier <= 3 ? String(site.worst_tier) : "none";
}

function legend() {
  return h(
    "ul",
    { class: "map-legend", "data-testid": "map-legend" },
    TIERS.map((tier) => h("li", null, h("span", { class: `map-dot tier-${tier}`, "aria-hidden": "true" }), t(`map.legend.${tier}`))),
  );
}

function popup(site) {
  const open = site.open_alerts
    ? t("map.open_alerts", { n: site.open_alerts })
    : t("map.no_open_alerts");
  return h(
    "div",
    { class: "map-popup", "data-testid": "map-popup", dataset: { siteId: site.site_id } },
    h("strong", { translate: "no" }, site.name),
    h("div", { class: "muted", translate: "no" }, `${enterpriseName(site.enterprise_id)}${site.district ? ` · ${site.district}` : ""}`),
    h("div", null, open),
    h(
      "div",
      { class: "map-links" },
      h("a", { href: `#/wall?site=${encodeURIComponent(site.site_id)}`, "data-testid": "map-site-alerts" }, t("map.site_alerts")),
      h("a", { href: "#/sites", "data-testid": "map-site-status" }, t("map.site_status")),
    ),
  );
}

function siteIcon(L, site) {
  return L.divIcon({
    className: `site-marker tier-${tierOf(site)}`,
    iconSize: [18, 18],
    html: "",
  });
}

// A cluster takes the colour of its most urgent site, so a red site is never hidden in a green group.
function clusterIcon(L, cluster) {
  const children = cluster.getAllChildMarkers();
  const worst = children.reduce((w, m) => Math.min(w, m.options.worstTier ?? 4), 4);
  const tier = worst <= 3 ? String(worst) : "none";
  const count = document.createElement("span");
  count.textContent = String(cluster.getChildCount());
  return L.divIcon({ className: `site-cluster tier-${tier}`, iconSize: [34, 34], html: count });
}

function districtTooltip(name) {
  return h("span", { translate: "no" }, name);
}

/**
 * Build a map in `box` and keep it current. `compact`: the wall's panel (no zoom buttons beyond
 * the basics, a smaller box). Returns {reload, sites()}.
 */
async function build(box, ctx, { compact }) {
  const L = window.L;
  if (!L?.markerClusterGroup) throw new Error(t("map.no_library"));
  const [config, districts] = await Promise.all([get("map/config", null, ctx.signal), get("map/districts", null, ctx.signal)]);
  // The view may have been left while these loaded: build nothing its cleanups would never remove.
  if (ctx.signal.aborted) throw new DOMException(t("map.failed", { error: "" }), "AbortError");
  const map = L.map(box, {
    attributionControl: false, // the vendored libraries' licences are in vendor/; no link leaves the page
    zoomControl: false,
    // Low enough that the whole world fits the wall's 200 px panel: a site placed far from the
    // districts (a mistyped coordinate) widens the frame rather than falling outside it, where
    // markercluster would not draw it at all.
    minZoom: compact ? -1 : 0,
    maxZoom: 19,
    worldCopyJump: false,
  });
  L.control.zoom({ zoomInTitle: t("map.zoom_in"), zoomOutTitle: t("map.zoom_out") }).addTo(map);
  ctx.onCleanup(() => map.remove());
  // Tiles below zoom 0 are zoom 0's, scaled: the maps may zoom out past it (minZoom above).
  if (config.tile_url) L.tileLayer(config.tile_url, { maxZoom: 19, minZoom: -1, minNativeZoom: 0 }).addTo(map);
  const districtLayer = L.geoJSON(districts, {
    style: () => ({ className: "district", weight: 1.5 }),
    onEachFeature: (feature, layer) => {
      const name = feature.properties?.name;
      if (name) layer.bindTooltip(districtTooltip(name), { sticky: true, className: "district-label" });
    },
  }).addTo(map);
  const clusters = L.markerClusterGroup({
    showCoverageOnHover: false,
    maxClusterRadius: compact ? 50 : 40,
    iconCreateFunction: (cluster) => clusterIcon(L, cluster),
  });
  map.addLayer(clusters);
  let sites = [];
  // Every site in view until the operator moves the map: framed again when the box is laid out
  // anew (the wall's side column settles as its alert list fills) and when the sites change.
  // markercluster draws only what is in view, so a frame from an earlier size would hide sites.
  let moved = false;
  for (const event of ["pointerdown", "wheel", "keydown"]) box.addEventListener(event, () => (moved = true), { passive: true });

  function frame() {
    if (moved || !box.clientWidth || !box.clientHeight) return;
    // The districts frame the map; sites outside them widen it, so none is off-screen.
    let bounds = districtLayer.getLayers().length ? districtLayer.getBounds() : null;
    for (const site of sites) {
      const point = L.latLng(site.latitude, site.longitude);
      bounds = bounds ? bounds.extend(point) : L.latLngBounds(point, point);
    }
    // Not animated: during a zoom animation Leaflet ignores a new view, and a frame for a box that
    // has just changed size would be lost until the next reload.
    if (bounds?.isValid()) map.fitBounds(bounds, { padding: [16, 16], maxZoom: 16, animate: false });
    else map.setView([35, 105], 4, { animate: false }); // nothing to show: the country, until a site is placed
  }

  let drawn = ""; // the sites as last drawn: an alert burst that changes nothing redraws nothing
  let openSite = null; // the site whose card is open: kept open across a redraw

  async function reload() {
    const result = await get("map/sites", null, ctx.signal);
    const now = JSON.stringify(result.items);
    if (now === drawn) return result;
    drawn = now;
    sites = result.items;
    const reopen = openSite;
    clusters.clearLayers(); // closes an open card: reopened below
    const markers = sites.map((site) => {
      const marker = L.marker([site.latitude, site.longitude], {
        icon: siteIcon(L, site),
        title: site.name,
        alt: site.name,
        keyboard: true,
        worstTier: site.worst_tier ?? 4,
      });
      marker.bindPopup(() => popup(site));
      marker.on("popupopen", () => (openSite = site.site_id));
      marker.on("popupclose", () => {
        if (openSite === site.site_id) openSite = null;
      });
      return marker;
    });
    clusters.addLayers(markers);
    frame();
    const again = reopen && markers[sites.findIndex((site) => site.site_id === reopen)];
    // Only where it is drawn on its own: opening a card inside a cluster would zoom the map.
    if (again && clusters.getVisibleParent(again) === again) again.openPopup();
    box.dataset.sites = String(sites.length);
    return result;
  }

  let pending = null;
  const soon = () => {
    clearTimeout(pending);
    pending = setTimeout(() => reload().catch(() => {}), RELOAD_MS);
  };
  ctx.onCleanup(subscribe(soon));
  const timer = setInterval(soon, REFRESH_MS);
  ctx.onCleanup(() => {
    clearInterval(timer);
    clearTimeout(pending);
  });
  // The box may have been laid out after Leaflet measured it (a grid that settles late).
  const resize = new ResizeObserver(() => {
    map.invalidateSize();
    frame();
  });
  resize.observe(box);
  ctx.onCleanup(() => resize.disconnect());
  return { reload, districts: districtLayer.getLayers().length };
}

export async function mount(container, ctx) {
  const summary = h("span", { class: "count", "data-testid": "map-summary" }, t("common.loading"));
  const box = h("div", { class: "site-map", "data-testid": "site-map", role: "region", "aria-label": t("map.title") });
  const note = h("p", { class: "muted", "data-testid": "map-note", hidden: true });
  container.append(h("div", { class: "toolbar" }, h("h1", null, t("map.title")), legend(), summary), note, box);
  const map = await build(box, ctx, { compact: false });
  const result = await map.reload();
  summary.textContent = t("map.summary", { sites: result.items.length, districts: map.districts });
  if (result.unplaced) {
    note.replaceChildren(t("map.unplaced", { n: result.unplaced }), h("code", null, "vigil sites locate <site> --lat … --lon …"));
    note.hidden = false;
  }
}

/** The wall's compact panel: the same map, small; failures stay inside the panel. */
export function mapPanel(panel, ctx) {
  const box = h("div", { class: "site-map compact", "data-testid": "wall-site-map", role: "region", "aria-label": t("map.title") });
  panel.replaceChildren(h("h2", null, h("a", { href: "#/map" }, t("map.title"))), box);
  build(box, ctx, { compact: true })
    .then((map) => map.reload())
    .catch((err) => {
      if (err?.name === "AbortError" || err?.status === 401) return;
      panel.append(h("p", { class: "muted" }, t("map.failed", { error: err?.message ?? err })));
    });
}
