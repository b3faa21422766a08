// Display names of enterprises and sites, so that pages show names, not ids (ids stay in the
// detail). Staff read the registry (GET /enterprises, /sites); an enterprise key reads its own
// (GET /ui/names). Loaded once per sign-in and kept for a few minutes; a name not yet known shows
// its id until the next load.

import { get } from "./api.js";

const TTL_MS = 5 * 60_000;
const MAX_PAGES = 10;

let loaded = null; // {at, enterprises: Map, sites: Map}
let pending = null;

async function all(path, signal) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const result = await get(path, { limit: 500, cursor }, signal);
    items.push(...result.items);
    cursor = result.next_cursor;
    if (!cursor) break;
  }
  return items;
}

async function fetchNames(session) {
  const enterprises = new Map();
  const sites = new Map();
  if (session?.role === "enterprise") {
    const own = await get("ui/names");
    for (const [id, name] of Object.entries(own.enterprises ?? {})) enterprises.set(id, name);
    for (const [id, s] of Object.entries(own.sites ?? {})) sites.set(id, { site_id: id, ...s });
  } else {
    const [es, ss] = await Promise.all([all("enterprises"), all("sites")]);
    for (const e of es) enterprises.set(e.enterprise_id, e.name);
    for (const s of ss) sites.set(s.site_id, s);
  }
  return { at: Date.now(), enterprises, sites };
}

/** Load (or refresh, when stale) the names; never rejects: without names, ids are shown. */
export async function loadNames(session) {
  if (loaded && Date.now() - loaded.at < TTL_MS) return loaded;
  pending ??= fetchNames(session)
    .then((names) => (loaded = names))
    .catch((err) => {
      console.warn("names not loaded", err);
      return loaded ?? { at: 0, enterprises: new Map(), sites: new Map() };
    })
    .finally(() => (pending = null));
  return pending;
}

export function forgetNames() {
  loaded = null;
}

export const enterpriseName = (id) => loaded?.enterprises.get(id) ?? id ?? "—";
export const siteName = (id) => loaded?.sites.get(id)?.name ?? id ?? "—";
export const siteDistrict = (id) => loaded?.sites.get(id)?.district ?? null;
export const enterprises = () => [...(loaded?.enterprises ?? new Map())].map(([id, name]) => ({ id, name }));
export const districts = () =>
  [...new Set([...(loaded?.sites.values() ?? [])].map((s) => s.district).filter(Boolean))].sort();

/** "企业名 · 站点名" for a card. */
export function placeOf(alert) {
  return `${enterpriseName(alert.enterprise_id)} · ${siteName(alert.site_id)}`;
}
