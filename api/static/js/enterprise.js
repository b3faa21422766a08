// The enterprise page: the notice inbox (reading a notice sends the read receipt), this
// enterprise's open alerts, and for one alert: acknowledge it and submit a rectification with photos.

import { get, imageUrl, post, request, seg } from "./api.js";
import { alertHref, alertName, fill, fmtAge, fmtTime, h, statusChip, tierBadge } from "./dom.js";
import { subscribe } from "./live.js";

const OPEN = ["open", "notified", "acknowledged", "rectification_submitted", "rejected", "escalated"];
const CAN_ACKNOWLEDGE = ["open", "notified", "escalated"];
const CAN_RECTIFY = ["open", "notified", "acknowledged", "rejected", "escalated"];
const MAX_PHOTOS = 10;
const POLL_MS = 60_000; // a safety net: changes arrive on the stream

const KIND_LABELS = {
  opened: "New violation",
  rejected: "Rectification rejected",
  escalated: "Escalated",
  closed: "Closed",
  dismissed: "Dismissed (false alarm)",
};

export async function mount(container, ctx) {
  if (ctx.params.alertId) return mountAlert(container, ctx, ctx.params.alertId);
  return mountInbox(container, ctx);
}

async function markRead(notice, ctx) {
  if (notice.read_at) return notice.read_at;
  const receipt = await post(`enterprise/notices/${seg(notice.notice_id)}/read`, {}, ctx.signal);
  notice.read_at = receipt.read_at;
  return receipt.read_at;
}

async function mountInbox(container, ctx) {
  const score = h("section", { class: "panel", "data-testid": "compliance" });
  const noticesBox = h("section", { class: "panel", "data-testid": "notices" });
  const alertsBox = h("section", { class: "panel", "data-testid": "enterprise-alerts" });
  container.append(h("h1", null, `Notices and alerts — ${ctx.session.enterprise_id}`), score, noticesBox, alertsBox);

  function noticeCard(n) {
    const p = n.payload ?? {};
    const readState = h("span", { class: "muted", "data-testid": "read-state" }, n.read_at ? `read ${fmtTime(n.read_at)}` : "unread");
    const readButton = n.read_at
      ? null
      : h("button", { type: "button", class: "ghost", "data-testid": "mark-read" }, "Mark read");
    const el = h(
      "article",
      { class: `panel notice ${n.read_at ? "" : "unread"}`, "data-testid": "notice", dataset: { noticeId: n.notice_id, alertId: n.alert_id } },
      h(
        "div",
        { class: "head" },
        p.tier ? tierBadge(p.tier) : null,
        h("strong", null, KIND_LABELS[n.kind] ?? n.kind),
        h("span", null, [p.name_en, p.name_zh].filter(Boolean).join(" · ") || p.code || ""),
        h("span", { class: "muted" }, fmtTime(n.created_at)),
        readState,
      ),
      p.summary ? h("p", { "data-testid": "notice-summary" }, p.summary) : null,
      p.reason ? h("p", null, `Reason: ${p.reason}`) : null,
      p.rectify_by ? h("p", null, `Rectify by ${fmtTime(p.rectify_by)} (${fmtAge(p.rectify_by)})`) : null,
      p.leniency_en ? h("p", { class: "muted" }, p.leniency_en, p.leniency_zh ? ` · ${p.leniency_zh}` : "") : null,
      h("div", { class: "actions" }, readButton, h("a", { class: "button", href: alertHref(n.alert_id), "data-testid": "open-alert" }, "Open alert")),
    );
    readButton?.addEventListener("click", async () => {
      readButton.disabled = true;
      try {
        await markRead(n, ctx);
        el.classList.remove("unread");
        readState.textContent = `read ${fmtTime(n.read_at)}`;
        readButton.remove();
      } catch (err) {
        readButton.disabled = false;
        ctx.banner(`Could not mark read: ${err.message}`, "error");
      }
    });
    // Opening the alert from its notice is reading it.
    el.querySelector("[data-testid=open-alert]").addEventListener("click", () => {
      markRead(n, ctx).catch(() => {});
    });
    return el;
  }

  function alertRow(a) {
    return h(
      "tr",
      { "data-testid": "enterprise-alert", dataset: { alertId: a.alert_id } },
      h("td", null, tierBadge(a.tier)),
      h("td", null, h("a", { href: alertHref(a.alert_id) }, alertName(a))),
      h("td", null, a.summary),
      h("td", null, statusChip(a.status)),
      h("td", null, `${fmtTime(a.deadline)} (${fmtAge(a.deadline)})`),
    );
  }

  async function load() {
    const [notices, alerts, compliance] = await Promise.all([
      get("enterprise/notices", { limit: 50 }, ctx.signal),
      get("enterprise/alerts", { status: OPEN, limit: 100 }, ctx.signal),
      get("enterprise/compliance", null, ctx.signal).catch(() => null),
    ]);
    const unread = notices.items.filter((n) => !n.read_at).length;
    fill(
      noticesBox,
      h("h2", null, `Notices (${unread} unread)`),
      notices.items.length ? notices.items.map(noticeCard) : h("p", { class: "empty" }, "No notices."),
    );
    fill(
      alertsBox,
      h("h2", null, `Open alerts (${alerts.items.length})`),
      alerts.items.length
        ? h(
            "table",
            null,
            h("thead", null, h("tr", null, ["Tier", "Violation", "Summary", "Status", "Rectify by"].map((t) => h("th", null, t)))),
            h("tbody", null, alerts.items.map(alertRow)),
          )
        : h("p", { class: "empty" }, "No open alerts."),
    );
    if (compliance) {
      fill(
        score,
        h("h2", null, "Compliance score"),
        h("p", null, h("strong", { "data-testid": "score" }, String(compliance.score)), ` / 100 over the last ${compliance.window_days} days`),
        h(
          "p",
          { class: "muted" },
          `${compliance.violations} violations · ${compliance.still_open} still open · ${compliance.missed_deadlines} missed deadlines · ${compliance.rectified_on_time} rectified on time`,
        ),
      );
    } else {
      score.hidden = true;
    }
  }

  let pending = null;
  const reload = () => {
    clearTimeout(pending);
    pending = setTimeout(() => load().catch(() => {}), 300);
  };
  ctx.onCleanup(subscribe(reload)); // a new notice comes with a change of its alert
  const timer = setInterval(reload, POLL_MS);
  ctx.onCleanup(() => {
    clearInterval(timer);
    clearTimeout(pending);
  });
  await load();
}

async function mountAlert(container, ctx, alertId) {
  const blobs = [];
  ctx.onCleanup(() => blobs.forEach((u) => URL.revokeObjectURL(u)));
  const header = h("div", { class: "toolbar" });
  const actions = h("section", { class: "panel", "data-testid": "enterprise-actions" });
  const info = h("section", { class: "panel" });
  const evidence = h("section", { class: "panel evidence" });
  const history = h("section", { class: "panel", "data-testid": "rectifications" });
  container.append(
    h("p", null, h("a", { href: "#/notices" }, "← Notices and alerts")),
    header,
    actions,
    h("div", { class: "detail-grid" }, info, evidence),
    history,
  );

  function image(sha, alt, testid) {
    const img = h("img", { alt, "data-testid": testid });
    imageUrl(`alerts/${seg(alertId)}/evidence/${seg(sha)}`, ctx.signal)
      .then((url) => {
        blobs.push(url);
        img.src = url;
      })
      .catch(() => img.replaceWith(h("span", { class: "muted" }, `${alt}: not available`)));
    return img;
  }

  let formHasWork = () => false;
  const staleNote = h("p", { class: "banner", hidden: true });
  container.insertBefore(staleNote, actions);

  function rectificationForm(a) {
    const error = h("p", { class: "error", role: "alert" });
    const description = h("textarea", { id: "rect-description", name: "description", required: true, maxlength: "4000" });
    const photos = h("input", { id: "rect-photos", name: "photos", type: "file", accept: "image/jpeg,image/png", multiple: true });
    const chosen = h("p", { class: "muted" });
    photos.addEventListener("change", () => {
      chosen.textContent = [...photos.files].map((f) => f.name).join(", ");
    });
    formHasWork = () => description.value.trim() !== "" || photos.files.length > 0;
    const submit = h("button", { type: "submit" }, "Submit rectification");
    const form = h(
      "form",
      { class: "action-form", "data-testid": "rectification-form" },
      h("h3", null, a.status === "rejected" ? "Submit a new rectification" : "Submit a rectification"),
      h("label", { for: description.id }, "What was done"),
      description,
      h("label", { for: photos.id }, `Photos (JPEG or PNG, up to ${MAX_PHOTOS}, 5 MiB each)`),
      photos,
      chosen,
      h("div", { class: "row" }, submit),
      error,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      const text = description.value.trim();
      if (!text) {
        error.textContent = "Describe what was done.";
        return;
      }
      if (photos.files.length > MAX_PHOTOS) {
        error.textContent = `At most ${MAX_PHOTOS} photos.`;
        return;
      }
      const data = new FormData();
      data.append("description", text);
      for (const file of photos.files) data.append("photos", file, file.name);
      submit.disabled = true;
      try {
        await request(`enterprise/alerts/${seg(alertId)}/rectification`, { method: "POST", form: data, signal: ctx.signal });
        ctx.banner("Rectification submitted; the bureau will review it.");
        await load();
      } catch (err) {
        submit.disabled = false;
        if (err?.name !== "AbortError") error.textContent = err.message;
      }
    });
    return form;
  }

  async function acknowledge(button) {
    button.disabled = true;
    try {
      await post(`enterprise/alerts/${seg(alertId)}/acknowledge`, {}, ctx.signal);
      ctx.banner("Acknowledged.");
      await load();
    } catch (err) {
      button.disabled = false;
      if (err?.name !== "AbortError") ctx.banner(`Acknowledge failed: ${err.message}`, "error");
    }
  }

  async function load() {
    const a = await get(`enterprise/alerts/${seg(alertId)}`, null, ctx.signal);
    formHasWork = () => false;
    staleNote.hidden = true;
    // Opening the alert is reading its notices.
    const unread = (a.notices ?? []).filter((n) => !n.read_at);
    await Promise.all(unread.map((n) => markRead(n, ctx).catch(() => {})));
    fill(header, h("h1", { "data-testid": "detail-title" }, alertName(a)), tierBadge(a.tier), statusChip(a.status));
    const parts = [h("h2", null, "What to do")];
    if (CAN_ACKNOWLEDGE.includes(a.status)) {
      const button = h("button", { type: "button", "data-action": "acknowledge" }, "Acknowledge");
      button.addEventListener("click", () => acknowledge(button));
      parts.push(h("div", { class: "actions" }, button));
    }
    if (CAN_RECTIFY.includes(a.status)) parts.push(rectificationForm(a));
    if (a.status === "rectification_submitted") parts.push(h("p", null, "Your rectification is with the bureau for review."));
    if (a.status === "closed") parts.push(h("p", null, `Closed ${fmtTime(a.closed_at)}: ${a.close_reason ?? ""}`));
    if (a.status === "dismissed") parts.push(h("p", null, `Dismissed as a false alarm: ${a.close_reason ?? ""}`));
    fill(actions, parts);
    fill(
      info,
      h("h2", null, "Alert"),
      h(
        "dl",
        { class: "fields" },
        [
          ["Summary", a.summary],
          ["Site", a.site_id],
          ["Source", `${a.source_kind} ${a.source_id}`],
          ["Detected", fmtTime(a.first_seen)],
          ["Rectify by", `${fmtTime(a.deadline)} (${fmtAge(a.deadline)})`],
          ["Leniency", a.leniency.replaceAll("_", " ")],
        ].map(([k, v]) => [h("dt", null, k), h("dd", null, v)]),
      ),
    );
    const sha = a.evidence?.snapshot_sha256 ?? a.evidence?.frame_sha256;
    fill(evidence, h("h2", null, "Evidence"), sha ? image(sha, "evidence snapshot", "evidence-image") : h("p", { class: "muted" }, "No snapshot."));
    fill(
      history,
      h("h2", null, "Rectifications"),
      a.rectifications.length
        ? a.rectifications.map((r) =>
            h(
              "article",
              { class: "panel", "data-testid": "rectification" },
              h("p", null, `${fmtTime(r.submitted_at)}: `, r.description),
              h("div", { class: "photos" }, r.photos.map((p, i) => image(p, `photo ${i + 1}`, "rectification-photo"))),
              h("p", { class: "muted" }, r.decision ? `${r.decision}${r.decision_reason ? `: ${r.decision_reason}` : ""}` : "awaiting review"),
            ),
          )
        : h("p", { class: "muted" }, "None yet."),
    );
  }

  let pending = null;
  ctx.onCleanup(
    subscribe((change) => {
      if (change.alert_id !== alertId && change.type !== "reset") return;
      if (formHasWork()) {
        staleNote.textContent = "The bureau has changed this alert since you opened it; reload the page to see the change.";
        staleNote.hidden = false;
        return;
      }
      clearTimeout(pending);
      pending = setTimeout(() => load().catch(() => {}), 300);
    }),
  );
  ctx.onCleanup(() => clearTimeout(pending));
  await load();
}
