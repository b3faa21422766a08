// One alert for an operator: its fields, the evidence snapshot, the sensor trace of a telemetry
// alert, the audit trail, the notices with their delivery, the rectifications with their photos,
// and the operator's moves.

import { ApiError, get, imageUrl, post, seg } from "./api.js";
import { timeChart } from "./charts.js";
import { alertName, fill, fmtAge, fmtTime, h, statusChip, tierBadge } from "./dom.js";
import { subscribe } from "./live.js";
import { ACTIVE } from "./wall.js";

const ESCALATABLE = ["open", "notified", "acknowledged", "rejected"];

/** The operator's moves, when each is allowed (mirroring the server's rules, which still decide). */
const ACTIONS = [
  { id: "ack", label: "Acknowledge", when: (a) => ACTIVE.includes(a.status) && !a.operator_ack_at, immediate: true },
  { id: "verify", label: "Verify and close", when: (a) => a.status === "rectification_submitted", note: "Note (optional)" },
  { id: "reject", label: "Reject rectification", when: (a) => a.status === "rectification_submitted", reason: true, deadline: true },
  { id: "dismiss", label: "Dismiss as false alarm", when: (a) => ACTIVE.includes(a.status), reason: true, danger: true },
  { id: "escalate", label: "Escalate", when: (a) => ESCALATABLE.includes(a.status), reason: true },
  { id: "flag-difficult", label: "Flag difficult", when: (a) => ACTIVE.includes(a.status) && !a.difficult, reason: true },
  { id: "assign", label: "Assign", when: (a) => ACTIVE.includes(a.status), staff: true },
];

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
    h("p", null, h("a", { href: "#/wall" }, "← Alert wall")),
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
      alert.difficult ? h("span", { class: "badge" }, "difficult") : null,
      alert.penalty_case ? h("span", { class: "badge sev-critical" }, "penalty case") : null,
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
          action.label,
        ),
      );
    }
    const ackLine = alert.operator_ack_at
      ? h("p", { class: "acked" }, `Acknowledged on the wall by ${alert.operator_ack_by} at ${fmtTime(alert.operator_ack_at)}`)
      : null;
    fill(
      actions,
      h("h2", null, "Actions"),
      allowed.length ? row : h("p", { class: "muted" }, "No moves are open for an alert in this state."),
      ackLine,
    );
  }

  function openActionForm(action) {
    openForm = action.id;
    const error = h("p", { class: "error", role: "alert" });
    const inputs = {};
    const parts = [h("h3", null, action.label)];
    if (action.reason) {
      inputs.reason = h("textarea", { id: `f-${action.id}-reason`, required: true, maxlength: "4000" });
      parts.push(h("label", { for: inputs.reason.id }, "Reason"), inputs.reason);
    }
    if (action.note) {
      inputs.note = h("textarea", { id: `f-${action.id}-note`, maxlength: "4000" });
      parts.push(h("label", { for: inputs.note.id }, action.note), inputs.note);
    }
    if (action.deadline) {
      inputs.deadline = h("input", { id: `f-${action.id}-deadline`, type: "datetime-local" });
      parts.push(
        h("label", { for: inputs.deadline.id }, "New deadline (local time; empty: the code's own time from now)"),
        inputs.deadline,
      );
    }
    if (action.staff) {
      const list = h("datalist", { id: "staff-options" });
      inputs.staff = h("input", { id: `f-${action.id}-staff`, list: "staff-options", required: true, pattern: "[A-Za-z0-9_\\-]{1,64}" });
      inputs.reason = h("textarea", { id: `f-${action.id}-reason`, maxlength: "4000" });
      parts.push(
        h("label", { for: inputs.staff.id }, "Staff id"), inputs.staff, list,
        h("label", { for: inputs.reason.id }, "Reason (optional)"), inputs.reason,
      );
      staffOptions(list);
    }
    const submit = h("button", { type: "submit", class: action.danger ? "danger" : "" }, action.label);
    const cancel = h("button", { type: "button", class: "ghost", onclick: () => closeForm() }, "Cancel");
    const form = h("form", { class: "action-form", "data-testid": `form-${action.id}` }, parts, h("div", { class: "row" }, submit, cancel), error);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = {};
      if (inputs.reason?.value.trim()) body.reason = inputs.reason.value.trim();
      if (action.reason && !body.reason) {
        error.textContent = "A reason is required.";
        return;
      }
      if (inputs.note?.value.trim()) body.note = inputs.note.value.trim();
      if (inputs.deadline?.value) {
        const when = new Date(inputs.deadline.value); // datetime-local is the browser's local time
        if (Number.isNaN(when.getTime())) {
          error.textContent = "That deadline is not a date.";
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
          list.append(h("option", { value: handler.staff_id }, `${slot}: ${handler.name}${handler.away ? " (away)" : ""}`));
        }
      }
      for (const person of staff?.items ?? []) {
        if (seen.has(person.staff_id)) continue;
        seen.add(person.staff_id);
        list.append(h("option", { value: person.staff_id }, `${person.name}${person.away ? " (away)" : ""}`));
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
      const text = err instanceof ApiError && err.status === 409 ? `Not now: ${err.message}` : err.message;
      if (errorEl) errorEl.textContent = text;
      else ctx.banner(`${action.label} failed: ${text}`, "error");
      return false;
    }
    openForm = null;
    ctx.banner(`${action.label}: done.`);
    await load();
    return true;
  }

  // --- fields ------------------------------------------------------------------------------
  function renderFields() {
    const a = alert;
    const rows = [
      ["Alert id", h("code", null, a.alert_id)],
      ["Code", h("code", null, a.code)],
      ["Summary", h("span", { "data-testid": "detail-summary" }, a.summary)],
      ["Enterprise / site", `${a.enterprise_id} / ${a.site_id}`],
      ["Source", `${a.source_kind} ${a.source_id}`],
      ["Severity / tier", `${a.severity} / ${a.tier}`],
      ["Detector", a.detector],
      ["First seen", `${fmtTime(a.first_seen)} (${fmtAge(a.first_seen)})`],
      ["Last seen", fmtTime(a.last_seen)],
      ["Occurrences", String(a.occurrences)],
      ["Condition cleared", fmtTime(a.cleared_at)],
      ["Deadline", `${fmtTime(a.deadline)} (${fmtAge(a.deadline)})`],
      ["Leniency", a.leniency.replaceAll("_", " ") + (a.prior_alert_id ? ` (after ${a.prior_alert_id})` : "")],
      ["Handler", a.assignee ? `${a.assignee} (${a.assigned_slot ?? "?"})` : "—"],
      ["Notified", fmtTime(a.notified_at)],
      ["Enterprise acknowledged", fmtTime(a.acknowledged_at)],
      ["Rectified", fmtTime(a.rectified_at)],
      ["Escalated", a.escalated_at ? `${fmtTime(a.escalated_at)}: ${a.escalation_reason ?? ""}` : "—"],
      ["Closed", a.closed_at ? `${fmtTime(a.closed_at)}: ${a.close_reason ?? ""}` : "—"],
      ["Disposition", a.disposition ?? "—"],
    ];
    fill(fields, h("h2", null, "Alert"), h("dl", { class: "fields" }, rows.map(([k, v]) => [h("dt", null, k), h("dd", null, v)])));
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
        holder.replaceChildren(h("span", { class: "muted" }, err?.status === 404 ? `${alt}: not available` : `${alt}: ${err.message}`));
      });
    return holder;
  }

  function renderEvidence() {
    const ev = alert.evidence ?? {};
    const sha = ev.snapshot_sha256 ?? ev.frame_sha256;
    const other = Object.entries(ev).filter(([k]) => k !== "snapshot_sha256" && k !== "frame_sha256");
    fill(
      evidence,
      h("h2", null, "Evidence"),
      sha ? image(sha, "evidence snapshot", "evidence-image") : h("p", { class: "muted" }, "No snapshot on this alert."),
      other.length
        ? h("dl", { class: "fields" }, other.map(([k, v]) => [h("dt", null, k), h("dd", null, typeof v === "string" ? v : JSON.stringify(v))]))
        : null,
    );
  }

  // --- sensor trace ------------------------------------------------------------------------
  async function renderTrace() {
    trace.hidden = false;
    for (const destroy of charts.splice(0)) destroy();
    fill(trace, h("h2", null, "Sensor trace"), h("p", { class: "muted" }, "loading…"));
    let data;
    try {
      data = await get(`alerts/${seg(alertId)}/trace`, null, ctx.signal);
    } catch (err) {
      if (err?.name === "AbortError") return;
      fill(trace, h("h2", null, "Sensor trace"), h("p", { class: "muted" }, `No trace: ${err.message}`));
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
      h("h2", null, "Sensor trace"),
      notes.map((n) => h("p", { class: "muted" }, n)),
      h("p", { class: "muted" }, "Dashed red lines: when the alert was first seen, and when it cleared (or was last seen)."),
    );
    if (!xs.length) {
      trace.append(h("p", { class: "muted", "data-testid": "trace-empty" }, "No readings in the window."));
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
      h("h2", null, `Rectifications (${items.length})`),
      items.length
        ? items.map((r, i) =>
            h(
              "article",
              { class: "panel", "data-testid": "rectification" },
              h("h3", null, `#${i + 1} submitted ${fmtTime(r.submitted_at)} by ${r.submitted_by}`),
              h("p", { "data-testid": "rectification-description" }, r.description),
              h("div", { class: "photos" }, r.photos.map((sha, j) => image(sha, `rectification photo ${j + 1}`, "rectification-photo"))),
              h(
                "p",
                { class: "muted" },
                r.decision
                  ? `${r.decision} by ${r.decided_by} at ${fmtTime(r.decided_at)}${r.decision_reason ? `: ${r.decision_reason}` : ""}`
                  : "Awaiting review.",
              ),
            ),
          )
        : h("p", { class: "muted" }, "None submitted."),
    );
  }

  // --- notices -----------------------------------------------------------------------------
  function delivery(d) {
    const state = d.delivered_at ? "delivered" : d.dead_at ? "dead" : "pending";
    const text =
      state === "delivered" ? `${d.channel}: delivered ${fmtTime(d.delivered_at)}`
      : state === "dead" ? `${d.channel}: gave up after ${d.attempts} attempts (${d.last_error ?? "error"})`
      : `${d.channel}: pending, ${d.attempts} attempts${d.last_error ? ` (${d.last_error})` : ""}`;
    return h("span", { class: "delivery", dataset: { state } }, text);
  }

  function renderNotices() {
    const items = alert.notices ?? [];
    fill(
      notices,
      h("h2", null, `Notices to the enterprise (${items.length})`),
      items.length
        ? h(
            "table",
            null,
            h("thead", null, h("tr", null, ["Notice", "Kind", "Sent", "Delivery", "Read"].map((t) => h("th", null, t)))),
            h(
              "tbody",
              null,
              items.map((n) =>
                h(
                  "tr",
                  { "data-testid": "notice-row" },
                  h("td", null, h("code", null, n.notice_id)),
                  h("td", null, n.kind),
                  h("td", null, fmtTime(n.created_at)),
                  h("td", null, n.deliveries.length ? n.deliveries.map(delivery) : "inbox only"),
                  h("td", { "data-testid": "notice-read" }, n.read_at ? fmtTime(n.read_at) : "unread"),
                ),
              ),
            ),
          )
        : h("p", { class: "muted" }, "No notices."),
    );
  }

  // --- audit -------------------------------------------------------------------------------
  function renderAudit() {
    fill(
      audit,
      h("h2", null, "Audit trail"),
      h(
        "table",
        null,
        h("thead", null, h("tr", null, ["When", "Who", "What", "From → to", "Why"].map((t) => h("th", null, t)))),
        h(
          "tbody",
          null,
          (alert.audit ?? []).map((e) =>
            h(
              "tr",
              { "data-testid": "audit-row" },
              h("td", null, fmtTime(e.at)),
              h("td", null, e.actor),
              h("td", null, e.action),
              h("td", null, e.from_status === e.to_status ? (e.to_status ?? "") : `${e.from_status ?? "—"} → ${e.to_status ?? "—"}`),
              h("td", null, e.reason ?? ""),
            ),
          ),
        ),
      ),
    );
  }

  function reportError(err) {
    if (err?.name !== "AbortError" && err?.status !== 401) ctx.banner(`Could not reload: ${err.message}`, "error");
  }

  // Changes to this alert from elsewhere (the enterprise, another operator, a timer).
  let pending = null;
  ctx.onCleanup(
    subscribe((change) => {
      if (change.alert_id !== alertId && change.type !== "reset") return;
      stale = true;
      if (openForm) {
        fill(staleNote, "This alert has changed since you opened the form; it reloads when you finish or cancel.");
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

/**
 * The trace endpoint's answer (`{series: {metric: [[ts_ms, value], …]}, start_ms, end_ms,
 * bucket_ms, truncated}`) as uPlot columns: one shared time axis (seconds), one series per metric,
 * null where a metric has no reading at a time another has. Also takes `{series: [{metric,
 * points}]}`; thresholds (`thresholds: {metric: number | {min, max}}`), if a trace carries them,
 * become dashed lines.
 */
export function traceSeries(data) {
  const notes = [];
  let named = [];
  const raw = data?.series ?? {};
  if (Array.isArray(raw)) {
    named = raw.map((s) => [s.metric ?? s.name ?? s.label ?? "value", s.points ?? s.values ?? []]);
  } else if (raw && typeof raw === "object") {
    named = Object.entries(raw);
  }
  const times = new Set();
  const maps = named.map(([name, points]) => {
    const m = new Map();
    for (const p of points ?? []) {
      const [ts, v] = Array.isArray(p) ? p : [p.ts ?? p.t, p.value ?? p.v];
      const t = typeof ts === "string" ? new Date(ts).getTime() : Number(ts);
      if (!Number.isFinite(t)) continue;
      times.add(t);
      m.set(t, v === null || v === undefined ? null : Number(v));
    }
    return [name, m];
  });
  const sorted = [...times].sort((a, b) => a - b);
  const xs = sorted.map((t) => t / 1000);
  const series = maps.map(([name, m]) => ({ label: name, values: sorted.map((t) => (m.has(t) ? m.get(t) : null)), points: false }));
  // Threshold lines, when the trace says what the limit was.
  const thresholds = data?.thresholds ?? data?.limits ?? null;
  if (thresholds && typeof thresholds === "object" && xs.length) {
    for (const [metric, limit] of Object.entries(thresholds)) {
      const bounds = typeof limit === "number" ? { limit } : limit && typeof limit === "object" ? limit : {};
      for (const [which, value] of Object.entries(bounds)) {
        if (typeof value !== "number") continue;
        series.push({ label: `${metric} ${which}`, values: sorted.map(() => value), dash: [6, 4], colour: "#c4162a", points: false });
      }
    }
  }
  if (Number.isFinite(data?.start_ms) && Number.isFinite(data?.end_ms)) {
    notes.push(`Readings of ${data.device_id ?? "the device"} from ${fmtTime(data.start_ms)} to ${fmtTime(data.end_ms)}.`);
  }
  if (data?.bucket_ms) notes.push(`Averaged over ${Math.round(data.bucket_ms / 1000)} s buckets.`);
  if (data?.truncated) notes.push("The alert ran longer than the trace can show: cut at its end.");
  return { xs, series, notes };
}
