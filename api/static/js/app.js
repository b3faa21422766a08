// The dashboard shell: sign-in, the role's navigation, hash routes, the live-stream indicator.
//
// Operators and supervisors get the monitoring centre (#/wall, #/alert/<id>, #/review, #/sites,
// #/map, #/trends; supervisors also #/accounts); an enterprise key gets the enterprise page
// (/dashboard/enterprise).

import { collectSingleSignOn, onSessionEnd, resumeSession, signIn, signInWithPassword, signOut, singleSignOnUrl } from "./api.js";
import { fill, h } from "./dom.js";
import { lang, loadI18n, singleSignOnOffered, switchLanguage, t } from "./i18n.js";
import { enterpriseName, forgetNames, loadNames } from "./names.js";
import { onLiveState, startLive, stopLive } from "./live.js";
import * as account from "./account.js";
import * as accounts from "./accounts.js";
import * as detail from "./detail.js";
import * as enterprise from "./enterprise.js";
import * as siteMap from "./map.js";
import * as review from "./review.js";
import * as sites from "./sites.js";
import * as trends from "./trends.js";
import * as wall from "./wall.js";

const $ = (id) => document.getElementById(id);

const OPERATOR_NAV = [
  { hash: "#/wall", label: "nav.wall", view: wall },
  { hash: "#/review", label: "nav.review", view: review },
  { hash: "#/sites", label: "nav.sites", view: sites },
  { hash: "#/map", label: "nav.map", view: siteMap },
  { hash: "#/trends", label: "nav.trends", view: trends },
];
const ENTERPRISE_NAV = [{ hash: "#/notices", label: "nav.notices", view: enterprise }];
// Supervisors manage people's accounts (the API refuses the other roles, so they are not offered).
const ACCOUNTS_NAV = { hash: "#/accounts", label: "nav.accounts", view: accounts };
// A person signed in with a password (not a key) also gets their account page: the password change.
const ACCOUNT_NAV = { hash: "#/account", label: "nav.account", view: account };

function navFor(s) {
  const nav = isEnterprise(s) ? ENTERPRISE_NAV : OPERATOR_NAV;
  const managed = s?.role === "supervisor" ? [...nav, ACCOUNTS_NAV] : nav;
  return s?.account ? [...managed, ACCOUNT_NAV] : managed;
}

let current = null; // {controller, cleanups}
let activeSession = null;

/** A message above the view: kind "info" or "error"; cleared on the next route. */
export function banner(text, kind = "info") {
  const el = $("banner");
  if (!text) {
    el.hidden = true;
    return;
  }
  el.className = `banner ${kind === "error" ? "error" : ""}`;
  el.textContent = text;
  el.hidden = false;
}

function isEnterprise(s) {
  return s?.role === "enterprise";
}

function route() {
  const hash = (location.hash || "").split("?")[0]; // a view's own state may follow a "?"
  const match = /^#\/alert\/(.+)$/.exec(hash);
  if (match) {
    let id;
    try {
      id = decodeURIComponent(match[1]);
    } catch {
      id = match[1];
    }
    return { view: isEnterprise(activeSession) ? enterprise : detail, params: { alertId: id }, hash: null };
  }
  const nav = navFor(activeSession);
  const found = nav.find((n) => n.hash === hash) ?? nav[0];
  return { view: found.view, params: {}, hash: found.hash };
}

function unmount() {
  if (!current) return;
  current.controller.abort();
  for (const fn of current.cleanups.splice(0)) {
    try {
      fn();
    } catch (err) {
      console.warn("view cleanup failed", err);
    }
  }
  current = null;
}

async function render() {
  unmount();
  banner(null);
  if (!activeSession) return;
  const { view, params, hash } = route();
  document.body.dataset.view = hash ? hash.slice(2) : "detail";
  for (const a of $("nav").querySelectorAll("a")) {
    if (a.getAttribute("href") === hash) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const controller = new AbortController();
  const cleanups = [];
  current = { controller, cleanups };
  const container = $("view");
  container.replaceChildren();
  try {
    await loadNames(activeSession);
    if (controller.signal.aborted) return;
    await view.mount(container, {
      params,
      session: activeSession,
      signal: controller.signal,
      onCleanup: (fn) => cleanups.push(fn),
      banner,
    });
  } catch (err) {
    if (controller.signal.aborted || err?.name === "AbortError" || err?.status === 401) return;
    console.error(err);
    banner(t("error.view", { error: err?.message ?? err }), "error");
  }
}

function showSignedIn(s) {
  activeSession = s;
  $("login").hidden = true;
  $("logout").hidden = false;
  fill(
    $("who"),
    h("span", { "data-testid": "subject", translate: "no" }, s.subject),
    h("span", { class: "role", "data-testid": "role", dataset: { role: s.role } }, t(`role.${s.role}`)),
  );
  if (s.enterprise_id) {
    loadNames(s).then(() => {
      if (activeSession === s) $("who").append(h("span", { class: "role", "data-testid": "who-enterprise", translate: "no" }, enterpriseName(s.enterprise_id)));
    });
  }
  const enterpriseView = isEnterprise(s);
  // The page's address follows the role: the same shell serves both paths.
  const onEnterprisePath = /\/enterprise$/.test(location.pathname);
  if (enterpriseView && !onEnterprisePath) history.replaceState(null, "", "enterprise" + location.hash);
  if (!enterpriseView && onEnterprisePath) history.replaceState(null, "", "./" + location.hash);
  const nav = navFor(s);
  // A password a supervisor chose (new account, reset) is replaced before anything else.
  if (s.must_change && location.hash !== ACCOUNT_NAV.hash) history.replaceState(null, "", ACCOUNT_NAV.hash);
  fill($("nav"), nav.map((n) => h("a", { href: n.hash }, t(n.label))));
  $("nav").hidden = false;
  // Both roles follow the stream: the server filters an enterprise's to its own alerts.
  $("live").hidden = false;
  startLive();
  render();
}

function showSignedOut(reason) {
  activeSession = null;
  forgetNames();
  unmount();
  stopLive();
  $("view").replaceChildren();
  $("nav").hidden = true;
  $("nav").replaceChildren();
  $("live").hidden = true;
  $("logout").hidden = true;
  $("who").replaceChildren();
  $("login").hidden = false;
  $("login-error").textContent = reason ?? "";
  document.title = t("app.title");
  $("username").focus();
}

async function init() {
  try {
    await loadI18n();
  } catch (err) {
    console.error("message catalogue not loaded", err);
  }
  document.title = t("app.title");
  const other = lang() === "en" ? "zh-CN" : "en";
  $("lang").hidden = false;
  $("lang").setAttribute("lang", other);
  $("lang").addEventListener("click", () => switchLanguage(other));
  onSessionEnd((reason) => showSignedOut(reason));
  onLiveState((state) => {
    const el = $("live");
    el.dataset.state = state;
    el.textContent = t(`live.${state}`);
  });
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("api-key");
    const password = $("password");
    const button = event.submitter ?? $("login-form").querySelector("button");
    button.disabled = true;
    $("login-error").textContent = "";
    try {
      // The username and password first; an API key, the second way, when one is given.
      const s = input.value.trim()
        ? await signIn(input.value)
        : await signInWithPassword($("username").value, password.value);
      input.value = ""; // neither the key nor the password is kept anywhere
      password.value = "";
      showSignedIn(s);
    } catch (err) {
      $("login-error").textContent = err?.message ?? String(err);
    } finally {
      button.disabled = false;
    }
  });
  $("logout").addEventListener("click", () => signOut());
  // Single sign-on, where the bureau has a provider: a plain link, the server does the rest.
  if (singleSignOnOffered()) {
    $("login-form").before(h("p", { class: "sso" }, h("a", { class: "button", href: singleSignOnUrl(), "data-testid": "sso" }, t("login.sso"))));
  }
  window.addEventListener("hashchange", () => render());
  if (await finishSingleSignOn()) return;
  const s = resumeSession();
  if (s) showSignedIn(s);
  else showSignedOut(null);
}

/**
 * Back from the provider (api/oidc.py sends the browser to #/sso, or #sso-error=<reason>): collect
 * the session, or say why there is none. True when this page load was such a return.
 */
async function finishSingleSignOn() {
  const hash = location.hash;
  const failed = /^#sso-error=(\w+)$/.exec(hash);
  if (hash !== "#/sso" && !failed) return false;
  history.replaceState(null, "", location.pathname + location.search); // the wall, not #/sso again
  if (failed) {
    const reason = ["denied", "no_account", "disabled", "bound"].includes(failed[1]) ? failed[1] : "failed";
    showSignedOut(t(`login.sso_error.${reason}`));
    return true;
  }
  try {
    showSignedIn(await collectSingleSignOn());
  } catch (err) {
    showSignedOut(err?.message ?? String(err));
  }
  return true;
}

init();
