// The rectification review queue: alerts whose enterprise has submitted proof, oldest first (the
// longest waiting is reviewed first), each with the original evidence (整改前) beside the latest
// description and photos (整改后).

import { get, imageUrl, post, seg } from "./api.js";
import { alertHref, alertName, fill, fmtAge, fmtTime, h, plain, summaryOf, tierBadge } from "./dom.js";
import { t } from "./i18n.js";
import { placeOf } from "./names.js";
import { subscribe } from "./live.js";

const CONCURRENCY = 4;

export async function mount(container, ctx) {
  const blobs = [];
  ctx.onCleanup(() => blobs.forEach((u) => URL.revokeObjectURL(u)));
  const list = h("div", { class: "wall", "data-testid": "review-queue" });
  const count = h("span", { class: "count" });
  container.append(h("div", { class: "toolbar" }, h("h1", null, t("nav.review")), count), list);

  function photo(alertId, sha, alt, testid) {
    const img = h("img", { alt, "data-testid": testid });
    imageUrl(`alerts/${seg(alertId)}/evidence/${seg(sha)}`, ctx.signal)
      .then((url) => {
        blobs.push(url);
        img.src = url;
      })
      .catch(() => img.replaceWith(h("span", { class: "muted" }, t("image.missing", { what: alt }))));
    return img;
  }

  async function verify(item, button) {
    const alertId = item.alert.alert_id;
    button.disabled = true;
    try {
      await post(`alerts/${seg(alertId)}/verify`, {}, ctx.signal);
      ctx.banner(t("review.verified", { name: alertName(item.alert) }));
      await load();
    } catch (err) {
      button.disabled = false;
      if (err?.name !== "AbortError") ctx.banner(t("action.failed", { action: t("action.verify"), error: err.message }), "error");
    }
  }

  function item(a) {
    const late = a.rectified_at && a.deadline && new Date(a.rectified_at) > new Date(a.deadline);
    const body = h("div", { class: "summary" }, h("span", { class: "muted" }, t("common.loading")));
    const verifyButton = h("button", { type: "button", "data-action": "verify" }, t("action.verify"));
    verifyButton.addEventListener("click", () => verify({ alert: a }, verifyButton));
    const el = h(
      "article",
      { class: "alert-card", dataset: { tier: String(a.tier), alertId: a.alert_id }, "data-testid": "review-item" },
      h("div", { class: "badges" }, tierBadge(a.tier), late ? h("span", { class: "badge sev-critical" }, t("review.late")) : null),
      h("div", { class: "title" }, h("a", { href: alertHref(a.alert_id) }, alertName(a)), " ", summaryOf(a, { class: "muted" })),
      body,
      h(
        "div",
        { class: "meta" },
        plain(placeOf(a)),
        ` · ${t("review.submitted", { at: fmtTime(a.rectified_at), age: fmtAge(a.rectified_at) })} · ${t("review.deadline", { at: fmtTime(a.deadline) })}`,
      ),
      h("div", { class: "side" }, verifyButton, h("a", { class: "button ghost", href: alertHref(a.alert_id) }, t("review.open"))),
    );
    return { el, body, alert: a };
  }

  async function details(items) {
    const queue = [...items];
    const worker = async () => {
      while (queue.length && !ctx.signal.aborted) {
        const { body, alert } = queue.shift();
        try {
          const d = await get(`alerts/${seg(alert.alert_id)}`, null, ctx.signal);
          const latest = d.rectifications.at(-1);
          if (!latest) {
            fill(body, h("span", { class: "muted" }, t("review.none_found")));
            continue;
          }
          const ev = d.evidence ?? {};
          const before = ev.snapshot_sha256 ?? ev.frame_sha256;
          fill(
            body,
            h(
              "div",
              { class: "before-after" },
              h(
                "figure",
                { class: "before", "data-testid": "review-before" },
                h("figcaption", null, t("review.before")),
                before
                  ? photo(alert.alert_id, before, t("review.before"), "review-before-photo")
                  : h("p", { class: "muted" }, t("detail.no_snapshot")),
              ),
              h(
                "figure",
                { class: "after", "data-testid": "review-after" },
                h("figcaption", null, t("review.after")),
                plain(latest.description, { class: "para" }),
                h("div", { class: "photos" }, latest.photos.map((sha, i) => photo(alert.alert_id, sha, t("detail.photo", { n: i + 1 }), "review-after-photo"))),
              ),
            ),
            d.rectifications.length > 1 ? h("p", { class: "muted" }, t("review.attempt", { n: d.rectifications.length })) : null,
          );
        } catch (err) {
          if (err?.name !== "AbortError") fill(body, h("span", { class: "muted" }, err.message));
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  }

  async function load() {
    const page = await get("alerts", { status: "rectification_submitted", limit: 200 }, ctx.signal);
    const items = page.items
      .sort((x, y) => new Date(x.rectified_at ?? x.updated_at) - new Date(y.rectified_at ?? y.updated_at))
      .map(item);
    const previous = blobs.splice(0);
    fill(list, items.length ? items.map((i) => i.el) : h("p", { class: "empty" }, t("review.empty")));
    previous.forEach((u) => URL.revokeObjectURL(u)); // their images have just left the page
    count.textContent = t(page.next_cursor ? "review.count_more" : "review.count", { n: items.length });
    await details(items);
  }

  let pending = null;
  ctx.onCleanup(
    subscribe((change) => {
      // A submission arrives, or one leaves the queue (verified, rejected, dismissed …).
      const inQueue =
        typeof change.alert_id === "string" && list.querySelector(`[data-alert-id="${CSS.escape(change.alert_id)}"]`);
      if (change.type === "reset" || change.status === "rectification_submitted" || inQueue) {
        clearTimeout(pending);
        pending = setTimeout(() => load().catch(() => {}), 500);
      }
    }),
  );
  ctx.onCleanup(() => clearTimeout(pending));
  await load();
}
