// #/account: a person changes their own password (password accounts only; a key has none).
//
// The current password is required (the server counts a wrong one towards the account's
// lock-out). The rules the server applies — at least 10 characters, not the username, not a
// common password — are checked here first only to say so in the page's language; the server
// decides. Changing the password ends the account's other sessions; this one stays.

import { ApiError, post, updateSession } from "./api.js";
import { fill, h } from "./dom.js";
import { t } from "./i18n.js";

const MIN_LENGTH = 10;

function field(id, label, autocomplete) {
  return [
    h("label", { for: id }, t(label)),
    h("input", { id, type: "password", required: true, autocomplete, spellcheck: "false", maxlength: "1024" }),
  ];
}

function localProblem(session, current, next, repeat) {
  if (next.length < MIN_LENGTH) return t("account.too_short", { n: MIN_LENGTH });
  if (session.account && next.toLowerCase().includes(session.account.toLowerCase())) return t("account.has_username");
  if (next !== repeat) return t("account.mismatch");
  if (next === current) return t("account.same");
  return null;
}

function serverProblem(err) {
  if (err?.status === 403) return t("account.wrong_current");
  if (err?.status === 429) return t("account.locked");
  if (err?.status === 422 && /common/.test(err.message)) return t("account.common");
  return t("account.failed", { error: err?.message ?? String(err) });
}

export async function mount(container, { session, signal }) {
  document.title = `${t("account.title")} · ${t("app.title")}`;
  if (!session?.account) {
    const title = h("h1", null, t("account.title"));
    fill(container, h("section", { class: "panel account" }, title, h("p", null, t("account.key_only"))));
    return;
  }
  const status = h("p", { class: "error", role: "alert", "data-testid": "account-status" });
  const form = h(
    "form",
    { class: "account-form", "data-testid": "password-form" },
    h("input", { type: "text", name: "username", autocomplete: "username", value: session.account, hidden: true }),
    ...field("current-password", "account.current", "current-password"),
    ...field("new-password", "account.new", "new-password"),
    ...field("repeat-password", "account.repeat", "new-password"),
    h("p", { class: "hint" }, t("account.rules", { n: MIN_LENGTH })),
    h("button", { type: "submit" }, t("account.submit")),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const [current, next, repeat] = ["current-password", "new-password", "repeat-password"].map(
      (id) => form.querySelector(`#${id}`).value,
    );
    status.className = "error";
    const problem = localProblem(session, current, next, repeat);
    if (problem) {
      status.textContent = problem;
      return;
    }
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await post("auth/password", { old_password: current, new_password: next }, signal);
      form.reset();
      updateSession({ must_change: false });
      session.must_change = false;
      status.className = "ok";
      status.textContent = t("account.changed");
    } catch (err) {
      if (signal.aborted || err?.name === "AbortError") return;
      status.textContent = err instanceof ApiError ? serverProblem(err) : String(err);
    } finally {
      button.disabled = false;
    }
  });
  fill(
    container,
    h(
      "section",
      { class: "panel account" },
      h("h1", null, t("account.title")),
      h("p", null, t("account.who", { name: session.subject, username: session.account })),
      session.must_change ? h("p", { class: "banner", "data-testid": "must-change" }, t("account.must_change")) : null,
      form,
    ),
  );
  form.querySelector("#current-password").focus();
}
