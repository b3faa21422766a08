// #/accounts: supervisors manage people's password accounts (GET/POST /api/v1/accounts): list
// them, add one (a bureau account is one staff record with the role operator or supervisor; an
// enterprise account belongs to one enterprise), reset a password, disable or enable again.
//
// A password the server makes (new account, reset) is shown here once, in this view only, and is
// never kept: the person must change it at their first sign-in. The server decides every rule
// (who may, which staff member already has an account); this page only offers what it may accept.

import { ApiError, get, post, seg } from "./api.js";
import { fill, fmtTime, h, plain } from "./dom.js";
import { t } from "./i18n.js";
import { enterpriseName, enterprises } from "./names.js";

const MAX_PAGES = 10;
const USERNAME = "^[A-Za-z0-9][A-Za-z0-9._\\-]{2,63}$";

async function allStaff(signal) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const result = await get("staff", { limit: 500, cursor }, signal);
    items.push(...result.items);
    cursor = result.next_cursor;
    if (!cursor) break;
  }
  return items;
}

/** The server's refusal in the page's language where it is one we know, else its own words. */
function problemOf(err) {
  if (err instanceof ApiError && /is taken/.test(err.message)) return t("accounts.taken");
  return t("accounts.failed", { error: err?.message ?? String(err) });
}

function stateOf(a) {
  if (a.disabled_at) return h("span", { class: "status", dataset: { status: "dismissed" } }, t("accounts.state.disabled"));
  if (a.locked_until) return h("span", { class: "status", dataset: { status: "rejected" } }, t("accounts.state.locked", { at: fmtTime(a.locked_until) }));
  if (a.must_change) return h("span", { class: "status", dataset: { status: "rectification_submitted" } }, t("accounts.state.must_change"));
  return h("span", { class: "status", dataset: { status: "closed" } }, t("accounts.state.active"));
}

function select(id, options, props = {}) {
  return h("select", { id, ...props }, options.map(([value, text]) => h("option", { value }, text)));
}

export async function mount(container, ctx) {
  document.title = `${t("accounts.title")} · ${t("app.title")}`;
  const { signal } = ctx;
  let accounts = [];
  let staff = [];

  // The one place a new password is ever shown; emptied when the person says it is noted.
  const secret = h("section", { class: "panel one-time", "data-testid": "one-time-password", hidden: true });
  const status = h("p", { class: "error", role: "alert", "data-testid": "accounts-status" });
  const filter = h("input", { type: "search", placeholder: t("accounts.filter"), "aria-label": t("accounts.filter") });
  const list = h("div", { class: "table-scroll", "data-testid": "accounts" });
  const form = addForm();
  container.append(
    h(
      "div",
      { class: "accounts" },
      h("div", { class: "toolbar" }, h("h1", null, t("accounts.title")), filter),
      status,
      secret,
      h("section", { class: "panel" }, list),
      h("section", { class: "panel" }, h("h2", null, t("accounts.add")), form),
    ),
  );
  ctx.onCleanup(() => secret.replaceChildren());
  filter.addEventListener("input", render);

  function showPassword(username, password, key) {
    const done = h("button", { type: "button", class: "ghost" }, t("accounts.noted"));
    done.addEventListener("click", () => {
      secret.replaceChildren();
      secret.hidden = true;
    });
    fill(
      secret,
      h("h2", null, t(key, { username })),
      h("p", null, h("code", { class: "password", translate: "no", "data-testid": "new-password" }, password)),
      h("p", { class: "muted" }, t("accounts.shown_once")),
      done,
    );
    secret.hidden = false;
    secret.scrollIntoView?.({ block: "nearest" });
  }

  async function act(button, work) {
    button.disabled = true;
    status.className = "error";
    status.textContent = "";
    try {
      await work();
      await load();
    } catch (err) {
      if (signal.aborted || err?.name === "AbortError") return;
      status.textContent = problemOf(err);
    } finally {
      button.disabled = false;
    }
  }

  function row(a) {
    const own = ctx.session?.account === a.username;
    const reset = h("button", { type: "button", class: "ghost", "data-action": "reset" }, t("accounts.reset"));
    reset.addEventListener("click", () => {
      if (!confirm(t("accounts.confirm_reset", { username: a.username }))) return;
      act(reset, async () => {
        const result = await post(`accounts/${seg(a.username)}/password`, {}, signal);
        showPassword(a.username, result.temporary_password, "accounts.reset_done");
      });
    });
    const toggle = a.disabled_at
      ? h("button", { type: "button", class: "ghost", "data-action": "enable" }, t("accounts.enable"))
      : h("button", { type: "button", class: "danger", "data-action": "disable" }, t("accounts.disable"));
    toggle.addEventListener("click", () => {
      const action = a.disabled_at ? "enable" : "disable";
      if (action === "disable" && !confirm(t("accounts.confirm_disable", { username: a.username }))) return;
      act(toggle, async () => {
        await post(`accounts/${seg(a.username)}/${action}`, {}, signal);
        status.className = "ok";
        status.textContent = t(`accounts.${action}d`, { username: a.username });
      });
    });
    const belongs = a.enterprise_id
      ? [plain(enterpriseName(a.enterprise_id)), " ", h("code", { translate: "no" }, a.enterprise_id)]
      : [t("accounts.staff_record"), " ", h("code", { translate: "no" }, a.staff_id ?? "—")];
    return h(
      "tr",
      { "data-testid": "account", dataset: { username: a.username } },
      h("td", null, plain(a.username)),
      h("td", null, plain(a.display_name)),
      h("td", null, t(`role.${a.role}`)),
      h("td", null, belongs),
      h("td", { "data-testid": "account-state" }, stateOf(a)),
      h("td", null, fmtTime(a.last_login_at)),
      // One's own account is not disabled from here: that would end this very session.
      h("td", null, h("div", { class: "actions" }, reset, own ? null : toggle)),
    );
  }

  function render() {
    const q = filter.value.trim().toLowerCase();
    const shown = accounts.filter((a) =>
      !q || [a.username, a.display_name, a.staff_id ?? "", a.enterprise_id ?? "", a.enterprise_id ? enterpriseName(a.enterprise_id) : ""]
        .some((v) => v.toLowerCase().includes(q)),
    );
    const columns = ["username", "name", "role", "belongs", "state", "last_login", "actions"];
    fill(
      list,
      shown.length
        ? h(
            "table",
            null,
            h("thead", null, h("tr", null, columns.map((k) => h("th", null, t(`accounts.col.${k}`))))),
            h("tbody", null, shown.map(row)),
          )
        : h("p", { class: "empty" }, t("accounts.none")),
    );
    form.refresh();
  }

  function addForm() {
    const username = h("input", { id: "acct-username", required: true, pattern: USERNAME, maxlength: "64", autocomplete: "off", autocapitalize: "none", spellcheck: "false" });
    const kind = select("acct-kind", [["staff", t("accounts.kind.staff")], ["enterprise", t("accounts.kind.enterprise")]]);
    const staffSelect = select("acct-staff", []);
    const role = select("acct-role", [["operator", t("role.operator")], ["supervisor", t("role.supervisor")]]);
    const enterpriseSelect = select("acct-enterprise", []);
    const displayName = h("input", { id: "acct-display-name", maxlength: "200", autocomplete: "off" });
    const error = h("p", { class: "error", role: "alert", "data-testid": "add-account-error" });
    const staffPart = h("div", { class: "account-form" }, h("label", { for: staffSelect.id }, t("accounts.staff")), staffSelect, h("label", { for: role.id }, t("accounts.role")), role);
    const enterprisePart = h(
      "div",
      { class: "account-form", hidden: true },
      h("label", { for: enterpriseSelect.id }, t("accounts.enterprise")),
      enterpriseSelect,
      h("label", { for: displayName.id }, t("accounts.display_name")),
      displayName,
    );
    const submit = h("button", { type: "submit" }, t("accounts.create"));
    const el = h(
      "form",
      { class: "account-form", "data-testid": "add-account" },
      h("label", { for: username.id }, t("accounts.username")),
      username,
      h("p", { class: "hint muted" }, t("accounts.username_rules")),
      h("label", { for: kind.id }, t("accounts.kind")),
      kind,
      staffPart,
      enterprisePart,
      submit,
      error,
    );
    kind.addEventListener("change", () => {
      staffPart.hidden = kind.value !== "staff";
      enterprisePart.hidden = kind.value !== "enterprise";
    });
    el.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      const bureau = kind.value === "staff";
      const body = bureau
        ? { username: username.value.trim(), role: role.value, staff_id: staffSelect.value || null }
        : { username: username.value.trim(), role: "enterprise", enterprise_id: enterpriseSelect.value || null, display_name: displayName.value.trim() || null };
      if (bureau ? !body.staff_id : !body.enterprise_id) {
        error.textContent = t(bureau ? "accounts.pick_staff" : "accounts.pick_enterprise");
        return;
      }
      submit.disabled = true;
      try {
        const result = await post("accounts", body, signal);
        el.reset();
        kind.dispatchEvent(new Event("change"));
        showPassword(result.username, result.temporary_password, "accounts.created");
        await load();
      } catch (err) {
        if (signal.aborted || err?.name === "AbortError") return;
        error.textContent = problemOf(err);
      } finally {
        submit.disabled = false;
      }
    });
    // A staff member has at most one account: only those without one are offered.
    el.refresh = () => {
      const taken = new Set(accounts.map((a) => a.staff_id).filter(Boolean));
      const keep = staffSelect.value;
      fill(
        staffSelect,
        h("option", { value: "" }, t("accounts.pick_staff")),
        staff.filter((s) => !taken.has(s.staff_id)).map((s) => h("option", { value: s.staff_id }, `${s.name} (${s.staff_id})`)),
      );
      staffSelect.value = keep;
      const keepEnterprise = enterpriseSelect.value;
      fill(
        enterpriseSelect,
        h("option", { value: "" }, t("accounts.pick_enterprise")),
        enterprises()
          .sort((x, y) => x.name.localeCompare(y.name))
          .map((e) => h("option", { value: e.id }, `${e.name} (${e.id})`)),
      );
      enterpriseSelect.value = keepEnterprise;
    };
    return el;
  }

  async function load() {
    [accounts, staff] = await Promise.all([get("accounts", null, signal), allStaff(signal)]);
    render();
  }

  await load();
}
