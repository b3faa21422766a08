// Building the page without ever parsing server text as HTML: every string becomes a text node.
// Alert summaries, reasons and descriptions come from devices and enterprises; none is trusted.

import { formatDate, lang, t, tOr } from "./i18n.js";

const URL_ATTRIBUTES = new Set(["href", "src", "action", "formaction"]);

/** h("tag", {class, dataset, onclick, ...attrs}, ...children) → an element. Strings are text. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key.startsWith("on")) throw new Error(`refusing an inline handler attribute: ${key}`);
    else if (URL_ATTRIBUTES.has(key) && !safeUrl(value)) throw new Error(`refusing URL ${value}`);
    else if (typeof value === "boolean") el.toggleAttribute(key, value);
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Only our own routes, same-origin paths and blob URLs made here; never `javascript:`. */
function safeUrl(value) {
  const text = String(value);
  if (text.startsWith("#") || text.startsWith("blob:")) return true;
  try {
    return new URL(text, location.href).origin === location.origin;
  } catch {
    return false;
  }
}

/** Replace an element's children. */
/**
 * Show `dialog` as a modal over the page until its `close` button is pressed, Escape, or the page
 * is left (a hash change); then run `onStop()` and remove it. Returns that stop function.
 */
export function openModal(dialog, close, onStop) {
  const stop = () => {
    onStop();
    window.removeEventListener("hashchange", stop);
    dialog.close();
    dialog.remove();
  };
  close.addEventListener("click", stop);
  dialog.addEventListener("cancel", stop); // Escape
  window.addEventListener("hashchange", stop); // leaving the page
  document.body.append(dialog);
  dialog.showModal();
  return stop;
}

export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function clear(el) {
  el.replaceChildren();
}

/** A timestamp (ISO string, Date or epoch ms) as YYYY-MM-DD HH:mm (24 h) in the bureau's zone. */
export function fmtTime(value) {
  if (value === null || value === undefined || value === "") return "—";
  const d = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return formatDate(d);
}

/** "3 分钟前", "2 小时后": coarse, for scanning a wall. */
export function fmtAge(value, now = Date.now()) {
  if (!value) return "";
  const ms = new Date(value).getTime() - now;
  const abs = Math.abs(ms);
  const [n, unit] =
    abs < 60_000 ? [Math.round(abs / 1000), "s"]
    : abs < 3_600_000 ? [Math.round(abs / 60_000), "min"]
    : abs < 172_800_000 ? [Math.round(abs / 3_600_000), "h"]
    : [Math.round(abs / 86_400_000), "d"];
  return t(ms < 0 ? `age.ago.${unit}` : `age.in.${unit}`, { n });
}

export function fmtPercent(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)}%`;
}

export const STATUSES = [
  "open", "notified", "acknowledged", "rectification_submitted", "rejected", "escalated", "closed", "dismissed",
];

export function statusLabel(status) {
  return tOr(`status.${status}`, status);
}

export function statusChip(status) {
  return h("span", { class: "status", dataset: { status }, "data-testid": "status" }, statusLabel(status));
}

export function tierBadge(tier) {
  return h("span", { class: `badge tier-${tier}`, title: t("tier.title", { tier }) }, tOr(`tier.${tier}.badge`, String(tier)));
}

/** A value the catalogue may name (severity, leniency, source kind …), else the value itself. */
export function valueLabel(group, value) {
  return value === null || value === undefined ? "—" : tOr(`${group}.${value}`, String(value));
}

/** The catalogue's name of the alert's code in the page's language, or the bare code. */
export function alertName(alert) {
  const names = lang() === "en" ? [alert.name_en, alert.name_zh] : [alert.name_zh, alert.name_en];
  return names.find(Boolean) ?? alert.code;
}

/**
 * The alert's summary in the page's language when the API gives it (summary_zh / summary_en),
 * else the detector's own text, marked translate="no": it is data, not the dashboard's words.
 */
export function summaryOf(alert, props = {}) {
  const own = lang() === "en" ? alert.summary_en : alert.summary_zh;
  if (own) return h("span", props, own);
  return h("span", { ...props, translate: "no" }, alert.summary ?? "");
}

/** The summary as plain text in the page's language (a notification's body). */
export function summaryText(alert) {
  return (lang() === "en" ? alert.summary_en : alert.summary_zh) || alert.summary || "";
}

/** Text that is data (ids, codes, what people typed): shown as is, never translated. */
export function plain(value, props = {}) {
  return h("span", { ...props, translate: "no" }, value ?? "");
}

/** The detail's route for an alert id (ids carry `:` and `.`; encode anyway). */
export function alertHref(alertId) {
  return `#/alert/${encodeURIComponent(alertId)}`;
}
