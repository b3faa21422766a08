// One alert for an operator: its fields, the evidence snapshot, the sensor trace of a telemetry
// alert, the audit trail, the notices with their delivery, the rectifications with their photos,
// and the operator's moves.

import { ApiError, get, imageUrl, post, seg } from "./api.js";
import { timeChart } from "./charts.js";
import { alertName, fill, fmtAge, fmtTime, h, plain, statusChip, summaryOf, tierBadge, valueLabel } from "./dom.js";
import { t, tOr } from "./i18n.js";
import { enterpriseName, siteName } from "./names.js";
import { subscribe } from "./live.js";
import { traceSeries } from "./trace.js";
import { clipVideo } from "./clip.js";
import { liveButton } from "./camview.js";
import { ACTIVE } from "./wall.js";

const ESCALATABLE = ["open", "notified", "acknowledged", "rejected"];

/** The operator's moves, when each is allowed (mirroring the server's rules, which still decide). */
const ACTIONS = [
  { id: "ack", when: (a) => ACTIVE.includes(a.status) && !a.operator_ack_at, immediate: true },
  { id: "verify", when: (a) => a.status === "rectification_submitted", note: true },
  { id: "reject", when: (a) => a.status === "rectification_submitted", reason: true, deadline: true },
  { id: "dismiss", when: (a) => ACTIVE.includes(a.status), reason: true, danger: true },
  { id: "escalate", when: (a) => ESCALATABLE.includes(a.status), reason: true },
  { id: "flag-difficult", when: (a) => ACTIVE.includes(a.status) && !a.difficult, reason: true },
  { id: "assign", when: (a) => ACTIVE.includes(a.status), staff: true },
];
const label = (action) => t(`action.${action.id}`);

export async function mount(container, ctx) {
  const alertId = ctx.params.alertId;
  const blobs = new Map(); // "alert/sha" → blob URL (revoked when the view goes)
  const charts = [];
  let alert = null;
  let openForm = null; // the action whose form is open: a reload must not wipe what is typed
  let stale = false;

  ctx.onCleanup(() => {
    for (const url of blobs.values()) URL.revokeObjectURL(url);
    for (const destroy of charts.splice(0)) destroy();
  });

  const header = h("div", { class: "toolbar" });
  const actions = h("section", { class: "panel", "data-testid": "actions" });
  const staleNote = h("p", { class: "banner", hidden: true, "data-testid": "stale" });
  const fields = h("section", { class: "panel" });
  const evidence = h("section", { class: "panel evidence" });
  const trace = h("section", { class: "panel", hidden: true, "data-testid": "trace" });
  const audit = h("section", { class: "panel", "data-testid": "audit" });
  const notices = h("section", { class: "panel", "data-testid": "notices" });
  const rectifications = h("section", { class: "panel", "data-testid": "rectifications" });
  container.append(
    h("p", null, h("a", { href: "#/wall" }, t("detail.back"))),
    header,
    staleNote,
    actions,
    h("div", { class: "detail-grid" }, h("div", null, fields, trace), h("div", null, evidence)),
    rectifications,
    notices,
    audit,
  );

  async function load() {
    alert = await get(`alerts/${seg(alertId)}`, null, ctx.signal);
    stale = false;
    staleNote.hidden = true;
    fill(
      header,
      h("h1", { "data-testid": "detail-title" }, alertName(alert)),
      tierBadge(alert.tier),
      statusChip(alert.status),
      alert.difficult ? h("span", { class: "badge" }, t("detail.difficult")) : null,
      alert.penalty_case ? h("span", { class: "badge sev-critical" }, t("detail.penalty_case")) : null,
    );
    renderActions();
    renderFields();
    renderEvidence();
    renderRectifications();
    renderNotices();
    renderAudit();
    if (alert.source_kind === "device") renderTrace();
  }

  // --- actions -----------------------------------------------------------------------------
  function renderActions() {
    if (openForm) return; // keep the form (and its text); the stale note offers a reload
    const allowed = ACTIONS.filter((a) => a.when(alert));
    const row = h("div", { class: "actions" });
    for (const action of allowed) {
      row.append(
        h(
          "button",
          {
            type: "button",
            class: action.danger ? "danger" : action.id === "ack" && alert.tier === 1 ? "ack" : "",
            "data-action": action.id,
            onclick: () => (action.immediate ? perform(action, {}) : openActionForm(action)),
          },
          label(action),
        ),
      );
    }
    const ackLine = alert.operator_ack_at
      ? h("p", { class: "acked" }, t("detail.acked_by", { who: alert.operator_ack_by, at: fmtTime(alert.operator_ack_at) }))
      : null;
    fill(
      actions,
      h("h2", null, t("detail.actions")),
      allowed.length ? row : h("p", { class: "muted" }, t("detail.no_actions")),
      ackLine,
    );
  }

  function openActionForm(action) {
    openForm = action.id;
    const error = h("p", { class: "error", role: "alert" });
    const inputs = {};
    const parts = [h("h3", null, label(action))];
    if (action.reason) {
      inputs.reason = h("textarea", { id: `f-${action.id}-reason`, required: true, maxlength: "4000" });
      parts.push(h("label", { for: inputs.reason.id }, t("form.reason")), inputs.reason);
    }
    if (action.note) {
      inputs.note = h("textarea", { id: `f-${action.id}-note`, maxlength: "4000" });
      parts.push(h("label", { for: inputs.note.id }, t("form.note")), inputs.note);
    }
    if (action.deadline) {
      inputs.deadline = h("input", { id: `f-${action.id}-deadline`, type: "datetime-local" });
      parts.push(
        h("label", { for: inputs.deadline.id }, t("form.deadline")),
        inputs.deadline,
      );
    }
    if (action.staff) {
      const list = h("datalist", { id: "staff-options" });
      inputs.staff = h("input", { id: `f-${action.id}-staff`, list: "staff-options", required: true, pattern: "[A-Za-z0-9_\\-]{1,64}" });
      inputs.reason = h("textarea", { id: `f-${action.id}-reason`, maxlength: "4000" });
      parts.push(
        h("label", { for: inputs.staff.id }, t("form.staff")), inputs.staff, list,
        h("label", { for: inputs.reason.id }, t("form.reason_optional")), inputs.reason,
      );
      staffOptions(list);
    }
    const submit = h("button", { type: "submit", class: action.danger ? "danger" : "" }, label(action));
    const cancel = h("button", { type: "button", class: "ghost", onclick: () => closeForm() }, t("form.cancel"));
    const form = h("form", { class: "action-form", "data-testid": `form-${action.id}` }, parts, h("div", { class: "row" }, submit, cancel), error);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = {};
      if (inputs.reason?.value.trim()) body.reason = inputs.reason.value.trim();
      if (action.reason && !body.reason) {
        error.textContent = t("form.reason_required");
        return;
      }
      if (inputs.note?.value.trim()) body.note = inputs.note.value.trim();
      if (inputs.deadline?.value) {
        const when = new Date(inputs.deadline.value); // datetime-local is the browser's local time
        if (Number.isNaN(when.getTime())) {
          error.textContent = t("form.bad_deadline");
          return;
        }
        body.deadline = when.toISOString();
      }
      if (inputs.staff) body.staff_id = inputs.staff.value.trim();
      submit.disabled = true;
      const ok = await perform(action, body, error);
      submit.disabled = false;
      if (ok) closeForm();
    });
    for (const b of actions.querySelectorAll(".actions button")) b.disabled = true;
    actions.append(form);
    (inputs.reason ?? inputs.staff ?? inputs.note ?? submit).focus();
  }

  function closeForm() {
    openForm = null;
    if (stale) load().catch(reportError);
    else renderActions();
  }

  async function staffOptions(list) {
    try {
      const [site, staff] = await Promise.all([
        get(`sites/${seg(alert.site_id)}`, null, ctx.signal).catch(() => null),
        get("staff", { limit: 500 }, ctx.signal).catch(() => null),
      ]);
      const seen = new Set();
      for (const slot of ["A", "B", "C"]) {
        const handler = site?.handlers?.[slot];
        if (handler && !seen.has(handler.staff_id)) {
          seen.add(handler.staff_id);
          list.append(h("option", { value: handler.staff_id }, t(handler.away ? "handler.slot_away" : "handler.slot", { slot: `${slot}:`, name: handler.name })));
        }
      }
      for (const person of staff?.items ?? []) {
        if (seen.has(person.staff_id)) continue;
        seen.add(person.staff_id);
        list.append(h("option", { value: person.staff_id }, person.away ? t("handler.away", { name: person.name }) : person.name));
      }
    } catch {
      /* suggestions only */
    }
  }

  async function perform(action, body, errorEl = null) {
    try {
      await post(`alerts/${seg(alertId)}/${action.id}`, body, ctx.signal);
    } catch (err) {
      if (err?.name === "AbortError") return false;
      const text = err instanceof ApiError && err.status === 409 ? t("action.conflict", { error: err.message }) : err.message;
      if (errorEl) errorEl.textContent = text;
      else ctx.banner(t("action.failed", { action: label(action), error: text }), "error");
      return false;
    }
    openForm = null;
    ctx.banner(t("action.done", { action: label(action) }));
    await load();
    return true;
  }

  // --- fields ------------------------------------------------------------------------------
  function renderFields() {
    const a = alert;
    const time = (v) => fmtTime(v);
    const rows = [
      ["alert_id", h("code", { translate: "no" }, a.alert_id)],
      ["code", h("code", { translate: "no" }, a.code)],
      ["summary", summaryOf(a, { "data-testid": "detail-summary" })],
      ["enterprise", [plain(enterpriseName(a.enterprise_id)), " ", h("code", { translate: "no" }, a.enterprise_id)]],
      ["site", [plain(siteName(a.site_id)), " ", h("code", { translate: "no" }, a.site_id)]],
      ["source", [valueLabel("source", a.source_kind), " ", h("code", { translate: "no" }, a.source_id), a.source_kind === "camera" ? [" ", liveButton(a.source_id)] : null]],
      ["severity_tier", `${valueLabel("severity", a.severity)} / ${a.tier}`],
      ["detector", plain(a.detector)],
      ["first_seen", `${time(a.first_seen)} (${fmtAge(a.first_seen)})`],
      ["last_seen", time(a.last_seen)],
      ["occurrences", String(a.occurrences)],
      ["cleared", time(a.cleared_at)],
      ["deadline", `${time(a.deadline)} (${fmtAge(a.deadline)})`],
      ["leniency", [valueLabel("leniency", a.leniency), a.prior_alert_id ? [" ", t("detail.after"), " ", plain(a.prior_alert_id)] : null]],
      ["handler", a.assignee ? [plain(a.assignee), ` (${a.assigned_slot ?? "?"})`] : "—"],
      ["notified", time(a.notified_at)],
      ["enterprise_acknowledged", time(a.acknowledged_at)],
      ["rectified", time(a.rectified_at)],
      ["escalated", a.escalated_at ? [`${time(a.escalated_at)}: `, plain(a.escalation_reason)] : "—"],
      ["closed", a.closed_at ? [`${time(a.closed_at)}: `, plain(a.close_reason)] : "—"],
      ["disposition", valueLabel("disposition", a.disposition)],
    ];
    fill(
      fields,
      h("h2", null, t("detail.alert")),
      h("dl", { class: "fields" }, rows.map(([k, v]) => [h("dt", null, t(`field.${k}`)), h("dd", null, v)])),
    );
  }
  // --- evidence ----------------------------------------------------------------------------
  function image(sha, alt, testid) {
    const img = h("img", { alt, "data-testid": testid, loading: "lazy" });
    const key = `${alertId}/${sha}`;
    const cached = blobs.get(key);
    if (cached) {
      img.src = cached;
      return img;
    }
    const holder = h("span", null, img);
    imageUrl(`alerts/${seg(alertId)}/evidence/${seg(sha)}`, ctx.signal)
      .then((url) => {
        blobs.set(key, url);
        img.src = url;
      })
      .catch((err) => {
        if (err?.name === "AbortError") return;
        holder.replaceChildren(h("span", { class: "muted" }, err?.status === 404 ? t("image.missing", { what: alt }) : t("image.failed", { what: alt, error: err.message })));
      });
    return holder;
  }

  function renderEvidence() {
    const ev = alert.evidence ?? {};
    const sha = ev.snapshot_sha256 ?? ev.frame_sha256;
    const other = Object.entries(ev).filter(([k]) => k !== "snapshot_sha256" && k !== "frame_sha256" && k !== "clip_sha256");
    fill(
      evidence,
      h("h2", null, t("detail.evidence")),
      sha ? image(sha, t("detail.snapshot"), "evidence-image") : h("p", { class: "muted" }, t("detail.no_snapshot")),
      clipVideo(alertId, ev, ctx.signal),
      other.length
        ? h("dl", { class: "fields" }, other.map(([k, v]) => [h("dt", null, tOr(`evidence.${k}`, k)), h("dd", null, evidenceValue(v))]))
        : null,
    );
  }

  // --- sensor trace ------------------------------------------------------------------------
  async function renderTrace() {
    trace.hidden = false;
    for (const destroy of charts.splice(0)) destroy();
    fill(trace, h("h2", null, t("detail.trace")), h("p", { class: "muted" }, t("common.loading")));
    let data;
    try {
      data = await get(`alerts/${seg(alertId)}/trace`, null, ctx.signal);
    } catch (err) {
      if (err?.name === "AbortError") return;
      fill(trace, h("h2", null, t("detail.trace")), h("p", { class: "muted" }, t("detail.no_trace", { error: err.message })));
      return;
    }
    // A cold-chain alert says which metric crossed which limit: draw the limits on the trace.
    const ev = alert.evidence ?? {};
    const limits = {};
    if (typeof ev.metric === "string") {
      if (typeof ev.min_c === "number") limits.min = ev.min_c;
      if (typeof ev.max_c === "number") limits.max = ev.max_c;
    }
    const { xs, series, notes } = traceSeries(Object.keys(limits).length ? { ...data, thresholds: { [ev.metric]: limits, ...(data.thresholds ?? {}) } } : data);
    fill(
      trace,
      h("h2", null, t("detail.trace")),
      notes.map((n) => h("p", { class: "muted" }, n)),
      h("p", { class: "muted" }, t("detail.trace_markers")),
    );
    if (!xs.length) {
      trace.append(h("p", { class: "muted", "data-testid": "trace-empty" }, t("detail.no_readings")));
      return;
    }
    const seconds = (iso) => (iso ? new Date(iso).getTime() / 1000 : NaN);
    charts.push(
      timeChart(trace, {
        xs,
        series,
        format: (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1)),
        testid: "trace-chart",
        markers: [{ at: seconds(alert.first_seen) }, { at: seconds(alert.cleared_at ?? alert.last_seen) }],
      }),
    );
  }

  // --- rectifications ----------------------------------------------------------------------
  function renderRectifications() {
    const items = alert.rectifications ?? [];
    fill(
      rectifications,
      h("h2", null, t("detail.rectifications", { n: items.length })),
      items.length
        ? items.map((r, i) =>
            h(
              "article",
              { class: "panel", "data-testid": "rectification" },
              h("h3", null, t("detail.rectification_head", { n: i + 1, at: fmtTime(r.submitted_at) }), " ", plain(r.submitted_by)),
              plain(r.description, { "data-testid": "rectification-description", class: "para" }),
              h("div", { class: "photos" }, r.photos.map((sha, j) => image(sha, t("detail.photo", { n: j + 1 }), "rectification-photo"))),
              h(
                "p",
                { class: "muted" },
                r.decision
                  ? [t("detail.decision", { decision: valueLabel("decision", r.decision), at: fmtTime(r.decided_at) }), " ", plain(r.decided_by),
                    r.decision_reason ? [": ", plain(r.decision_reason)] : null]
                  : t("detail.awaiting_review"),
              ),
            ),
          )
        : h("p", { class: "muted" }, t("detail.none_submitted")),
    );
  }

  // --- notices -----------------------------------------------------------------------------
  function delivery(d) {
    const state = d.delivered_at ? "delivered" : d.dead_at ? "dead" : "pending";
    const channel = valueLabel("channel", d.channel);
    const text =
      state === "delivered" ? t("delivery.delivered", { channel, at: fmtTime(d.delivered_at) })
      : t(`delivery.${state}`, { channel, attempts: d.attempts });
    const error = state !== "delivered" && d.last_error ? [" (", plain(d.last_error), ")"] : null;
    return h("span", { class: "delivery", dataset: { state } }, text, error);
  }

  function renderNotices() {
    const items = alert.notices ?? [];
    fill(
      notices,
      h("h2", null, t("detail.notices", { n: items.length })),
      items.length
        ? h(
            "table",
            null,
            h("thead", null, h("tr", null, ["notice", "kind", "sent", "delivery", "read"].map((k) => h("th", null, t(`notices.col.${k}`))))),
            h(
              "tbody",
              null,
              items.map((n) =>
                h(
                  "tr",
                  { "data-testid": "notice-row" },
                  h("td", null, h("code", { translate: "no" }, n.notice_id)),
                  h("td", null, valueLabel("notice", n.kind)),
                  h("td", null, fmtTime(n.created_at)),
                  h("td", null, n.deliveries.length ? n.deliveries.map(delivery) : t("delivery.inbox_only")),
                  h("td", { "data-testid": "notice-read" }, n.read_at ? fmtTime(n.read_at) : t("notices.unread")),
                ),
              ),
            ),
          )
        : h("p", { class: "muted" }, t("notices.none")),
    );
  }

  // --- audit -------------------------------------------------------------------------------
  function renderAudit() {
    fill(
      audit,
      h("h2", null, t("detail.audit")),
      h(
        "table",
        null,
        h("thead", null, h("tr", null, ["when", "who", "what", "change", "why"].map((k) => h("th", null, t(`audit.col.${k}`))))),
        h(
          "tbody",
          null,
          (alert.audit ?? []).map((e) =>
            h(
              "tr",
              { "data-testid": "audit-row" },
              h("td", null, fmtTime(e.at)),
              h("td", null, plain(e.actor)),
              h("td", null, valueLabel("audit", e.action)),
              h(
                "td",
                null,
                e.from_status === e.to_status
                  ? (e.to_status ? valueLabel("status", e.to_status) : "")
                  : `${valueLabel("status", e.from_status)} → ${valueLabel("status", e.to_status)}`,
              ),
              h("td", null, plain(e.reason ?? "")),
            ),
          ),
        ),
      ),
    );
  }

  function reportError(err) {
    if (err?.name !== "AbortError" && err?.status !== 401) ctx.banner(t("error.reload", { error: err.message }), "error");
  }

  // Changes to this alert from elsewhere (the enterprise, another operator, a timer).
  let pending = null;
  ctx.onCleanup(
    subscribe((change) => {
      if (change.alert_id !== alertId && change.type !== "reset") return;
      stale = true;
      if (openForm) {
        fill(staleNote, t("detail.stale"));
        staleNote.hidden = false;
        return;
      }
      clearTimeout(pending);
      pending = setTimeout(() => load().catch(reportError), 300);
    }),
  );
  ctx.onCleanup(() => clearTimeout(pending));

  await load();
}

/** An evidence value as text: numbers rounded, anything structured as compact JSON (data, not words). */
function evidenceValue(v) {
  if (typeof v === "number") return String(Number.isInteger(v) ? v : Number(v.toFixed(3)));
  if (typeof v === "string") return plain(v);
  return h("code", { translate: "no" }, JSON.stringify(v));
}
