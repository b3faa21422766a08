// An alert's event clip (a WebM camera ingest made around the finding): fetched with the
// session's credential, since a <video src> cannot send the Authorization header, and played from
// a blob URL, revoked when the view goes (its signal aborts).

import { request, seg } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";

export function clipVideo(alertId, ev, signal) {
  if (ev?.clip_failed) return h("p", { class: "muted", "data-testid": "evidence-clip-failed" }, t("clip.failed", { error: ev.clip_failed }));
  if (!ev?.clip_sha256) return null;
  const video = h("video", { controls: true, preload: "metadata", muted: true, playsinline: true, class: "evidence-image", "data-testid": "evidence-clip" });
  const caption = h("figcaption", { class: "muted" }, t(ev.clip_truncated ? "clip.truncated" : "clip.caption", { seconds: ev.clip_duration_s ?? "?" }));
  const holder = h("figure", null, video, caption);
  request(`alerts/${seg(alertId)}/clips/${seg(ev.clip_sha256)}`, { raw: true, signal })
    .then((response) => response.blob())
    .then((blob) => {
      const url = URL.createObjectURL(new Blob([blob], { type: "video/webm" }));
      signal?.addEventListener("abort", () => URL.revokeObjectURL(url), { once: true });
      video.src = url;
    })
    .catch((err) => {
      if (err?.name === "AbortError") return;
      holder.replaceChildren(h("p", { class: "muted" }, t("clip.failed", { error: err.message })));
    });
  return holder;
}
