// The rectification review queue: alerts whose enterprise has submitted proof, oldest first (the
// longest waiting is reviewed first), each with the latest description and photos.

import { get, imageUrl, post, seg } from "./api.js";
import { alertHref, alertName, fill, fmtAge, fmtTime, h, tierBadge } from "./dom.js";
import { subscribe } from "./live.js";

const CONCURRENCY = 4;

export async function mount(container, ctx) {
  const blobs = [];
  ctx.onCleanup(() => blobs.forEach((u) => URL.revokeObjectURL(u)));
  const list = h("div", { class: "wall", "data-testid": "review-queue" });
  const count = h("span", { class: "count" });
  container.append(h("div", { class: "toolbar" }, h("h1", null, "Rectification review"), count), list);

  function photo(alertId, sha, n) {
    const img = h("img", { alt: `rectification photo ${n}` });
    imageUrl(`alerts/${seg(alertId)}/evidence/${seg(sha)}`, ctx.signal)
      .then((url) => {
        blobs.push(url);
        img.src = url;
      })
      .catch(() => img.replaceWith(h("span", { class: "muted" }, `photo ${n}: not available`)));
    return img;
  }

  async function verify(alertId, button) {
    button.disabled = true;
    try {
      await post(`alerts/${seg(alertId)}/verify`, {}, ctx.signal);
      ctx.banner(`Verified and closed ${alertId}.`);
      await load();
    } catch (err) {
      button.disabled = false;
      if (err?.name !== "AbortError") ctx.banner(`Verify failed: ${err.message}`, "error");
    }
  }

  function item(a) {
    const late = a.rectified_at && a.deadline && new Date(a.rectified_at) > new Date(a.deadline);
    const body = h("div", { class: "summary" }, h("span", { class: "muted" }, "loading the rectification…"));
    const verifyButton = h("button", { type: "button", "data-action": "verify" }, "Verify and close");
    verifyButton.addEventListener("click", () => verify(a.alert_id, verifyButton));
    const el = h(
      "article",
      { class: "alert-card", dataset: { tier: String(a.tier), alertId: a.alert_id }, "data-testid": "review-item" },
      h("div", { class: "badges" }, tierBadge(a.tier), late ? h("span", { class: "badge sev-critical" }, "late") : null),
      h("div", { class: "title" }, h("a", { href: alertHref(a.alert_id) }, alertName(a))),
      body,
      h(
        "div",
        { class: "meta" },
        `${a.enterprise_id} / ${a.site_id} · submitted ${fmtTime(a.rectified_at)} (${fmtAge(a.rectified_at)}) · deadline ${fmtTime(a.deadline)}`,
      ),
      h("div", { class: "side" }, verifyButton, h("a", { class: "button ghost", href: alertHref(a.alert_id) }, "Review / reject")),
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
            fill(body, h("span", { class: "muted" }, "no rectification found"));
            continue;
          }
          fill(
            body,
            h("p", null, latest.description),
            h("div", { class: "photos" }, latest.photos.map((sha, i) => photo(alert.alert_id, sha, i + 1))),
            d.rectifications.length > 1 ? h("p", { class: "muted" }, `attempt ${d.rectifications.length}`) : null,
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
    fill(list, items.length ? items.map((i) => i.el) : h("p", { class: "empty" }, "Nothing awaits review."));
    previous.forEach((u) => URL.revokeObjectURL(u)); // their images have just left the page
    count.textContent = `${items.length} awaiting review${page.next_cursor ? " (first 200 shown)" : ""}`;
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
