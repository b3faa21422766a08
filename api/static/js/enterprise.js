// The enterprise page: the notice inbox (reading a notice sends the read receipt), this
// enterprise's open alerts, and for one alert: acknowledge it and submit a rectification with photos.

import { download, get, imageUrl, post, request, seg } from "./api.js";
import { alertHref, alertName, fill, fmtAge, fmtTime, h, plain, statusChip, summaryOf, tierBadge, valueLabel } from "./dom.js";
import { lang, t } from "./i18n.js";
import { enterpriseName, siteName } from "./names.js";
import { prepareUpload } from "./photos.js";
import { subscribe } from "./live.js";
import { clipVideo } from "./clip.js";
import { publicWindowSection } from "./publicwindow.js";

const OPEN = ["open", "notified", "acknowledged", "rectification_submitted", "rejected", "escalated"];
const CAN_ACKNOWLEDGE = ["open", "notified", "escalated"];
const CAN_RECTIFY = ["open", "notified", "acknowledged", "rejected", "escalated"];
const MAX_PHOTOS = 10;
const POLL_MS = 60_000; // a safety net: changes arrive on the stream


export async function mount(container, ctx) {
  if (ctx.params.alertId) return mountAlert(container, ctx, ctx.params.alertId);
  return mountInbox(container, ctx);
}

/**
 * Every alert of this enterprise, closed ones too, as a file for its own records: the server's
 * export keeps an enterprise credential to its own alerts, so nothing here narrows it.
 */
function exportButtons(ctx) {
  const button = (format) => {
    const el = h("button", { type: "button", class: "ghost", "data-testid": `enterprise-export-${format}` }, t(`enterprise.export_${format}`));
    el.addEventListener("click", async () => {
      el.disabled = true;
      try {
        await download(`enterprise/alerts.${format}`, { lang: lang() === "en" ? "en" : "zh-CN" }, `alerts.${format}`);
      } catch (err) {
        if (err?.name !== "AbortError") ctx.banner(t("enterprise.export_failed", { error: err?.message ?? err }), "error");
      } finally {
        el.disabled = false;
      }
    });
    return el;
  };
  return h("div", { class: "actions enterprise-export", "data-testid": "enterprise-export" }, h("span", { class: "muted" }, t("enterprise.export_all")), button("csv"), button("xlsx"));
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
  const exporter = exportButtons(ctx); // kept across reloads: a download under way keeps its button
  container.append(h("h1", null, t("enterprise.title"), " — ", plain(enterpriseName(ctx.session.enterprise_id))), score, noticesBox, alertsBox);
  // Not refilled by load(): a link shown once must outlive the inbox's reloads.
  container.append(publicWindowSection(ctx));

  function noticeCard(n) {
    const p = n.payload ?? {};
    const readState = h("span", { class: "muted", "data-testid": "read-state" }, n.read_at ? t("notices.read_at", { at: fmtTime(n.read_at) }) : t("notices.unread"));
    const readButton = n.read_at
      ? null
      : h("button", { type: "button", class: "ghost", "data-testid": "mark-read" }, t("notices.mark_read"));
    const el = h(
      "article",
      { class: `panel notice ${n.read_at ? "" : "unread"}`, "data-testid": "notice", dataset: { noticeId: n.notice_id, alertId: n.alert_id } },
      h(
        "div",
        { class: "head" },
        p.tier ? tierBadge(p.tier) : null,
        h("strong", null, valueLabel("notice", n.kind)),
        h("span", null, alertName(p)),
        h("span", { class: "muted" }, fmtTime(n.created_at)),
        readState,
      ),
      p.summary || p.summary_zh || p.summary_en ? h("p", null, summaryOf(p, { "data-testid": "notice-summary" })) : null,
      p.reason ? h("p", null, t("form.reason"), t("sites.colon"), plain(p.reason)) : null,
      p.rectify_by ? h("p", null, t("enterprise.rectify_by", { at: fmtTime(p.rectify_by), age: fmtAge(p.rectify_by) })) : null,
      leniencyText(p) ? h("p", { class: "muted" }, leniencyText(p)) : null,
      h("div", { class: "actions" }, readButton, h("a", { class: "button", href: alertHref(n.alert_id), "data-testid": "open-alert" }, t("notices.open_alert"))),
    );
    readButton?.addEventListener("click", async () => {
      readButton.disabled = true;
      try {
        await markRead(n, ctx);
        el.classList.remove("unread");
        readState.textContent = t("notices.read_at", { at: fmtTime(n.read_at) });
        readButton.remove();
      } catch (err) {
        readButton.disabled = false;
        ctx.banner(t("notices.read_failed", { error: err.message }), "error");
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
      h("td", null, summaryOf(a), h("div", { class: "muted", translate: "no" }, siteName(a.site_id))),
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
      h("h2", null, t("notices.title", { n: unread })),
      notices.items.length ? notices.items.map(noticeCard) : h("p", { class: "empty" }, t("notices.none")),
    );
    fill(
      alertsBox,
      h("h2", null, t("enterprise.open_alerts", { n: alerts.items.length })),
      alerts.items.length
        ? h(
            "table",
            null,
            h("thead", null, h("tr", null, ["tier", "violation", "summary", "status", "rectify_by"].map((k) => h("th", null, t(`enterprise.col.${k}`))))),
            h("tbody", null, alerts.items.map(alertRow)),
          )
        : h("p", { class: "empty" }, t("enterprise.no_open")),
      exporter,
    );
    if (compliance) {
      fill(
        score,
        h("h2", null, t("enterprise.score")),
        h("p", null, h("strong", { "data-testid": "score" }, String(compliance.score)), t("enterprise.score_window", { days: compliance.window_days })),
        h("p", { class: "muted" }, t("enterprise.score_detail", compliance)),
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
    h("p", null, h("a", { href: "#/notices" }, t("enterprise.back"))),
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
      .catch(() => img.replaceWith(h("span", { class: "muted" }, t("image.missing", { what: alt }))));
    return img;
  }

  let formHasWork = () => false;
  const staleNote = h("p", { class: "banner", hidden: true });
  container.insertBefore(staleNote, actions);

  function rectificationForm(a) {
    const error = h("p", { class: "error", role: "alert" });
    const description = h("textarea", { id: "rect-description", name: "description", required: true, maxlength: "4000" });
    const photos = h("input", { id: "rect-photos", name: "photos", type: "file", accept: "image/jpeg,image/png", multiple: true });
    const chosen = h("p", { class: "muted", translate: "no", "data-testid": "chosen-photos" });
    photos.addEventListener("change", () => {
      chosen.textContent = [...photos.files].map((f) => f.name).join(", ");
    });
    formHasWork = () => description.value.trim() !== "" || photos.files.length > 0;
    const submit = h("button", { type: "submit" }, t("rect.submit"));
    const form = h(
      "form",
      { class: "action-form", "data-testid": "rectification-form" },
      h("h3", null, t(a.status === "rejected" ? "rect.title_again" : "rect.title")),
      h("label", { for: description.id }, t("rect.description")),
      description,
      h("label", { for: photos.id }, t("rect.photos", { n: MAX_PHOTOS })),
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
        error.textContent = t("rect.description_required");
        return;
      }
      if (photos.files.length > MAX_PHOTOS) {
        error.textContent = t("rect.too_many", { n: MAX_PHOTOS });
        return;
      }
      submit.disabled = true;
      const data = new FormData();
      data.append("description", text);
      try {
        // A phone's photo is often 50 MP: scaled down here, in the browser, so that it goes through.
        for (const file of photos.files) {
          chosen.textContent = t("rect.preparing", { name: file.name });
          const ready = await prepareUpload(file);
          data.append("photos", ready, ready.name);
        }
        chosen.textContent = t("rect.uploading");
        await request(`enterprise/alerts/${seg(alertId)}/rectification`, { method: "POST", form: data, signal: ctx.signal });
        ctx.banner(t("rect.submitted"));
        await load();
      } catch (err) {
        submit.disabled = false;
        chosen.textContent = "";
        if (err?.name !== "AbortError") error.textContent = err?.message ?? String(err);
      }
    });
    return form;
  }

  async function acknowledge(button) {
    button.disabled = true;
    try {
      await post(`enterprise/alerts/${seg(alertId)}/acknowledge`, {}, ctx.signal);
      ctx.banner(t("action.done", { action: t("action.ack") }));
      await load();
    } catch (err) {
      button.disabled = false;
      if (err?.name !== "AbortError") ctx.banner(t("action.failed", { action: t("action.ack"), error: err.message }), "error");
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
    const parts = [h("h2", null, t("enterprise.todo"))];
    if (CAN_ACKNOWLEDGE.includes(a.status)) {
      const button = h("button", { type: "button", "data-action": "acknowledge" }, t("action.ack"));
      button.addEventListener("click", () => acknowledge(button));
      parts.push(h("div", { class: "actions" }, button));
    }
    if (CAN_RECTIFY.includes(a.status)) parts.push(rectificationForm(a));
    if (a.status === "rectification_submitted") parts.push(h("p", null, t("enterprise.in_review")));
    if (a.status === "closed") parts.push(h("p", null, t("enterprise.closed", { at: fmtTime(a.closed_at) }), " ", plain(a.close_reason ?? "")));
    if (a.status === "dismissed") parts.push(h("p", null, t("enterprise.dismissed"), " ", plain(a.close_reason ?? "")));
    fill(actions, parts);
    fill(
      info,
      h("h2", null, t("detail.alert")),
      h(
        "dl",
        { class: "fields" },
        [
          ["summary", summaryOf(a, { "data-testid": "detail-summary" })],
          ["site", [plain(siteName(a.site_id)), " ", h("code", { translate: "no" }, a.site_id)]],
          ["source", [valueLabel("source", a.source_kind), " ", h("code", { translate: "no" }, a.source_id)]],
          ["first_seen", fmtTime(a.first_seen)],
          ["deadline", `${fmtTime(a.deadline)} (${fmtAge(a.deadline)})`],
          ["leniency", valueLabel("leniency", a.leniency)],
        ].map(([k, v]) => [h("dt", null, t(`field.${k}`)), h("dd", null, v)]),
      ),
    );
    const sha = a.evidence?.snapshot_sha256 ?? a.evidence?.frame_sha256;
    fill(
      evidence,
      h("h2", null, t("detail.evidence")),
      sha ? image(sha, t("detail.snapshot"), "evidence-image") : h("p", { class: "muted" }, t("detail.no_snapshot")),
      clipVideo(alertId, a.evidence, ctx.signal),
    );
    fill(
      history,
      h("h2", null, t("detail.rectifications", { n: a.rectifications.length })),
      a.rectifications.length
        ? a.rectifications.map((r) =>
            h(
              "article",
              { class: "panel", "data-testid": "rectification" },
              h("p", null, `${fmtTime(r.submitted_at)}: `, plain(r.description)),
              h("div", { class: "photos" }, r.photos.map((p, i) => image(p, t("detail.photo", { n: i + 1 }), "rectification-photo"))),
              h(
                "p",
                { class: "muted" },
                r.decision ? valueLabel("decision", r.decision) : t("detail.awaiting_review"),
                r.decision_reason ? [": ", plain(r.decision_reason)] : null,
              ),
            ),
          )
        : h("p", { class: "muted" }, t("detail.none_submitted")),
    );
  }

  let pending = null;
  ctx.onCleanup(
    subscribe((change) => {
      if (change.alert_id !== alertId && change.type !== "reset") return;
      if (formHasWork()) {
        staleNote.textContent = t("enterprise.stale");
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

/** The leniency sentence of a notice in the page's language (the notice carries both). */
function leniencyText(p) {
  const both = lang() === "en" ? [p.leniency_en, p.leniency_zh] : [p.leniency_zh, p.leniency_en];
  return both.find(Boolean) ?? "";
}
