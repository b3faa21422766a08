// The language of the page and every text in it. The texts come from the server's message
// catalogue (vigil/data/i18n/<lang>/ui.json, served at /api/v1/ui/messages): no UI string lives in
// this code. zh-CN is the default; English is a switch remembered in this browser (localStorage).
// Dates are shown as YYYY-MM-DD HH:mm, 24 h, in the bureau's zone (/api/v1/ui/config).

const UI_ROOT = new URL("../../../api/v1/ui/", import.meta.url);
const STORAGE_KEY = "vigil.lang";
export const LANGUAGES = ["zh-CN", "en"];
const DEFAULT_LANGUAGE = "zh-CN";

let texts = {};
let language = DEFAULT_LANGUAGE;
let timeZone = "Asia/Shanghai";
let dateFormat = null;
let singleSignOn = false;

/** The language chosen in this browser, else the default. */
export function chosenLanguage() {
  let stored = null;
  try {
    stored = localStorage.getItem(STORAGE_KEY);
  } catch {
    stored = null;
  }
  return LANGUAGES.includes(stored) ? stored : DEFAULT_LANGUAGE;
}

export const lang = () => language;
export const zone = () => timeZone;
/** Whether the bureau's single sign-on is configured (the sign-in page then offers it). */
export const singleSignOnOffered = () => singleSignOn;

/** Remember `next` for this browser and show the page in it (a reload: every view re-renders). */
export function switchLanguage(next) {
  if (!LANGUAGES.includes(next)) return;
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch {
    /* storage refused: this page only */
  }
  location.reload();
}

async function fetchJson(path) {
  const response = await fetch(new URL(path, UI_ROOT), { cache: "no-cache", credentials: "omit" });
  if (!response.ok) throw new Error(`${response.status} ${path}`);
  return response.json();
}

/** Load the catalogue and the configuration; call once before anything is rendered. */
export async function loadI18n() {
  language = chosenLanguage();
  const [messages, config] = await Promise.all([
    fetchJson(`messages?lang=${encodeURIComponent(language)}`),
    fetchJson("config").catch(() => null),
  ]);
  texts = messages ?? {};
  if (config?.timezone) timeZone = config.timezone;
  singleSignOn = config?.single_sign_on === true;
  try {
    dateFormat = new Intl.DateTimeFormat("en-CA", {
      timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    });
  } catch {
    timeZone = "UTC";
    dateFormat = new Intl.DateTimeFormat("en-CA", {
      timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    });
  }
  document.documentElement.lang = language;
  translateDocument(document);
}

/** The text of `key` with `{name}` placeholders filled from `params`; the key itself if missing. */
export function t(key, params) {
  const text = texts[key];
  if (text === undefined) {
    console.warn(`no text for ${key}`);
    return key;
  }
  return params ? text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m)) : text;
}

/** The text of `key` when the catalogue has it, else `fallback` (a value the catalogue may not know). */
export function tOr(key, fallback, params) {
  return key in texts ? t(key, params) : fallback;
}

/** Static markup: `data-i18n` sets the text, `data-i18n-<attr>` an attribute (placeholder, aria-label). */
export function translateDocument(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("*")) {
    for (const attr of el.getAttributeNames()) {
      if (attr.startsWith("data-i18n-")) el.setAttribute(attr.slice(10), t(el.getAttribute(attr)));
    }
  }
}

/** Date parts {year, month, day, hour, minute} of a Date in the bureau's zone. */
export function zonedParts(date) {
  const parts = {};
  for (const p of dateFormat.formatToParts(date)) parts[p.type] = p.value;
  return parts;
}

/** YYYY-MM-DD HH:mm (24 h) in the bureau's zone. */
export function formatDate(date) {
  const p = zonedParts(date);
  return `${p.year}-${p.month}-${p.day} ${p.hour === "24" ? "00" : p.hour}:${p.minute}`;
}

/** The instant the bureau's calendar day containing `date` began (for "today" figures). */
export function startOfZonedDay(date = new Date()) {
  const p = zonedParts(date);
  const guess = Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day));
  // The zone's offset at that instant: what the wall clock says minus what UTC says.
  const q = zonedParts(new Date(guess));
  const wall = Date.UTC(Number(q.year), Number(q.month) - 1, Number(q.day), Number(q.hour) % 24, Number(q.minute));
  return new Date(guess - (wall - guess));
}
