// Talking to the Vigil API: the browser session, authenticated requests, evidence as blob URLs.
//
// A person signs in with a username and password (or, second, an API key); either is used once, to
// open a session, and then forgotten: only the short-lived session token is kept, in
// sessionStorage (this tab, until it closes or the token expires).

// This module is served at <root>/dashboard/assets/js/api.js; the API lives at <root>/api/v1/.
// Resolving against our own URL keeps the dashboard working behind a path-prefixing proxy.
import { lang, t } from "./i18n.js";

const API_ROOT = new URL("../../../api/v1/", import.meta.url);
const STORAGE_KEY = "vigil.session";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** The API URL for `path` ("alerts/x") with query parameters; arrays repeat the parameter. */
export function apiUrl(path, query) {
  const url = new URL(path, API_ROOT);
  for (const [key, value] of Object.entries(query ?? {})) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== null && v !== undefined && v !== "") url.searchParams.append(key, String(v));
    }
  }
  return url;
}

/** A path segment, escaped (alert ids carry `:` and `.`). */
export const seg = (value) => encodeURIComponent(value);

const listeners = new Set();

/** Called with a reason whenever the session ends (sign-out, expiry, a revoked key). */
export function onSessionEnd(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

let expiryTimer = null;

export function session() {
  let value = null;
  try {
    value = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null");
  } catch {
    value = null;
  }
  if (!value || typeof value.token !== "string") return null;
  if (value.expires_at && new Date(value.expires_at).getTime() <= Date.now()) {
    sessionStorage.removeItem(STORAGE_KEY);
    return null;
  }
  return value;
}

function armExpiry(s) {
  clearTimeout(expiryTimer);
  if (!s?.expires_at) return;
  // setTimeout's limit is ~24.8 days; a session is far shorter.
  const ms = Math.min(new Date(s.expires_at).getTime() - Date.now(), 2 ** 31 - 1);
  expiryTimer = setTimeout(() => endSession(t("session.expired")), Math.max(ms, 0));
}

/** Exchange an API key for a session token; resolves to {subject, role, enterprise_id, expires_at}. */
export async function signIn(apiKey) {
  const key = apiKey.trim();
  if (!key) throw new ApiError(400, t("login.empty"));
  let response;
  try {
    response = await fetch(apiUrl("auth/session"), {
      method: "POST",
      headers: { Authorization: `Bearer ${key}` },
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, t("error.unreachable"));
  }
  if (response.status === 401) throw new ApiError(401, t("login.invalid"));
  if (!response.ok) throw await errorOf(response);
  const s = await response.json();
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(s));
  armExpiry(s);
  return s;
}

/**
 * Sign in with a username and password; resolves to the session, with `account` and
 * `must_change` (a password a supervisor chose, to be replaced). Refusals carry a text to show.
 */
export async function signInWithPassword(username, password) {
  const name = username.trim();
  if (!name || !password) throw new ApiError(400, t("login.empty_password"));
  let response;
  try {
    response = await fetch(apiUrl("auth/login"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: name, password }),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, t("error.unreachable"));
  }
  if (response.status === 401 || response.status === 422) throw new ApiError(401, t("login.wrong_password"));
  if (response.status === 403) throw new ApiError(403, t("login.disabled"));
  if (response.status === 429) {
    const minutes = Math.max(1, Math.ceil(Number(response.headers.get("Retry-After") ?? "60") / 60));
    throw new ApiError(429, t("login.locked", { minutes }));
  }
  if (!response.ok) throw await errorOf(response);
  const s = await response.json();
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(s));
  armExpiry(s);
  return s;
}

/** Where the browser goes to sign in with the bureau's single sign-on (api/oidc.py). */
export const singleSignOnUrl = () => apiUrl("auth/oidc/start").href;

/**
 * Collect the session a single sign-on opened: the server handed it over in a cookie of its own
 * (never in the address), which this one request reads and clears.
 */
export async function collectSingleSignOn() {
  let response;
  try {
    response = await fetch(apiUrl("auth/oidc/session"), { method: "POST", cache: "no-store", credentials: "same-origin" });
  } catch {
    throw new ApiError(0, t("error.unreachable"));
  }
  if (!response.ok) throw new ApiError(response.status, t("login.sso_error.failed"));
  const s = await response.json();
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(s));
  armExpiry(s);
  return s;
}

/** Note a change to the kept session (e.g. the password was changed: no longer `must_change`). */
export function updateSession(patch) {
  const s = session();
  if (!s) return null;
  const next = { ...s, ...patch };
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(next));
  return next;
}

export function resumeSession() {
  const s = session();
  if (s) armExpiry(s);
  return s;
}

/**
 * Sign out: end the session on the server first (so the token stops working everywhere, streams
 * included, not only in this tab), then here. The local sign-out happens even if the server
 * cannot be reached: the token then still expires at its time.
 */
export async function signOut() {
  const s = session();
  if (s) {
    try {
      await fetch(apiUrl("auth/session"), {
        method: "DELETE",
        headers: { Authorization: `Bearer ${s.token}` },
        cache: "no-store",
        credentials: "omit",
      });
    } catch {
      /* unreachable: signed out here regardless */
    }
  }
  endSession(null);
}

export function endSession(reason = null) {
  clearTimeout(expiryTimer);
  sessionStorage.removeItem(STORAGE_KEY);
  for (const fn of [...listeners]) fn(reason);
}

async function errorOf(response) {
  let detail = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (typeof body?.detail === "string") detail = body.detail;
    else if (Array.isArray(body?.detail)) {
      // FastAPI's validation errors: [{loc: [...], msg}]
      detail = body.detail.map((e) => `${(e.loc ?? []).slice(1).join(".")}: ${e.msg}`).join("; ");
    }
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(response.status, detail);
}

/** Bearer headers for the current session (the stream reader uses them too). */
export function authHeaders() {
  const s = session();
  if (!s) {
    endSession(t("session.required"));
    throw new ApiError(401, t("session.required"));
  }
  return { Authorization: `Bearer ${s.token}` };
}

/**
 * request("alerts", {query, method, json, form, signal, raw}) → parsed JSON (or the Response when raw).
 * A 401 ends the session: the token expired or its key was revoked.
 */
export async function request(path, { method = "GET", query, json, form, signal, raw = false } = {}) {
  // The server renders alert summaries in the page's language where it can.
  const headers = { ...authHeaders(), "Accept-Language": lang() };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // FormData: the browser sets the multipart boundary
  }
  let response;
  try {
    response = await fetch(apiUrl(path, query), { method, headers, body, signal, cache: "no-store", credentials: "omit" });
  } catch (err) {
    if (err?.name === "AbortError") throw err;
    throw new ApiError(0, t("error.unreachable"));
  }
  if (response.status === 401) {
    endSession(t("session.ended"));
    throw new ApiError(401, t("session.ended"));
  }
  if (!response.ok) throw await errorOf(response);
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path, query, signal) => request(path, { query, signal });
export const post = (path, json, signal) => request(path, { method: "POST", json: json ?? {}, signal });

/**
 * Saves what the API serves behind the bearer header (an export) as a file: a plain link could not
 * carry the header. The file is named by the server's Content-Disposition where it gives one.
 * With `json`, it is asked for by POST with that body (for what must not appear in a URL).
 */
export async function download(path, query, fallbackName, json) {
  const response = await request(path, json === undefined ? { query, raw: true } : { method: "POST", json, raw: true });
  const blob = await response.blob();
  const disposition = response.headers.get("Content-Disposition") || "";
  const named = /filename\*=UTF-8''([^;]+)/i.exec(disposition) || /filename="?([^";]+)"?/i.exec(disposition);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = named ? decodeURIComponent(named[1]) : fallbackName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

/**
 * An image the API serves behind the bearer header, as a blob URL for an <img>. The caller
 * revokes it (`URL.revokeObjectURL`) when the view goes. With `json`, asked for by POST.
 */
export async function imageUrl(path, signal, json) {
  const response = await request(path, json === undefined ? { raw: true, signal } : { method: "POST", json, raw: true, signal });
  const blob = await response.blob();
  if (!blob.type.startsWith("image/")) throw new ApiError(415, t("error.not_image"));
  return URL.createObjectURL(blob);
}
