// Building the page without ever parsing server text as HTML: every string becomes a text node.
// Alert summaries, reasons and descriptions come from devices and enterprises; none is trusted.

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
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function clear(el) {
  el.replaceChildren();
}

const pad = (n) => String(n).padStart(2, "0");

/** A timestamp (ISO string, Date or epoch ms) as local YYYY-MM-DD HH:MM:SS. */
export function fmtTime(value) {
  if (value === null || value === undefined || value === "") return "—";
  const d = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/** "3 min ago", "in 2 h": coarse, for scanning a wall. */
export function fmtAge(value, now = Date.now()) {
  if (!value) return "";
  const ms = new Date(value).getTime() - now;
  const abs = Math.abs(ms);
  const [n, unit] =
    abs < 60_000 ? [Math.round(abs / 1000), "s"]
    : abs < 3_600_000 ? [Math.round(abs / 60_000), "min"]
    : abs < 172_800_000 ? [Math.round(abs / 3_600_000), "h"]
    : [Math.round(abs / 86_400_000), "d"];
  return ms < 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`;
}

export function fmtPercent(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)}%`;
}

export const STATUS_LABELS = {
  open: "Open",
  notified: "Notified",
  acknowledged: "Acknowledged by enterprise",
  rectification_submitted: "Rectification submitted",
  rejected: "Rectification rejected",
  escalated: "Escalated",
  closed: "Closed",
  dismissed: "Dismissed",
};

export function statusChip(status) {
  return h("span", { class: "status", dataset: { status }, "data-testid": "status" }, STATUS_LABELS[status] ?? status);
}

export function tierBadge(tier) {
  const label = tier === 1 ? "URGENT" : tier === 2 ? "Tier 2" : "Tier 3";
  return h("span", { class: `badge tier-${tier}`, title: `risk tier ${tier}` }, label);
}

/** The catalogue's names, English with the Chinese after it, or the bare code. */
export function alertName(alert) {
  const names = [alert.name_en, alert.name_zh].filter(Boolean);
  return names.length ? names.join(" · ") : alert.code;
}

/** The detail's route for an alert id (ids carry `:` and `.`; encode anyway). */
export function alertHref(alertId) {
  return `#/alert/${encodeURIComponent(alertId)}`;
}
