// Live view of a camera: the API's MJPEG stream (GET cameras/{id}/live), read with fetch because
// an <img src> cannot send the bearer header. Each JPEG part becomes a blob URL on an <img>, the
// previous one revoked, so memory holds one frame whatever the stream's length. Shown in a modal
// <dialog> on document.body, so a page that re-renders (sites every 30 s) does not cut it; closing
// the dialog or leaving the page aborts the request, and the API ends the camera's lease.

import { request, seg } from "./api.js";
import { h, openModal } from "./dom.js";
import { t } from "./i18n.js";

const HEADER_END = new Uint8Array([13, 10, 13, 10]);
// A part's headers are a few short lines; anything longer is not this stream.
const MAX_HEADER = 1024;
// A frame is under the API's 1 MiB Kafka limit; a Content-Length beyond this ends the view.
const MAX_FRAME = 4 * 1024 * 1024;

function indexOf(buf, pattern, from) {
  outer: for (let i = from; i <= buf.length - pattern.length; i++) {
    for (let j = 0; j < pattern.length; j++) if (buf[i + j] !== pattern[j]) continue outer;
    return i;
  }
  return -1;
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Read multipart JPEG parts from `response`, calling onFrame(Uint8Array) for each (the wall's
 * thumbnails, wallthumbs.js, read the same stream). */
async function readParts(response, onFrame) {
  const reader = response.body.getReader();
  let buf = new Uint8Array(0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf = concat(buf, value);
    for (;;) {
      const end = indexOf(buf, HEADER_END, 0);
      if (end < 0) {
        if (buf.length > MAX_HEADER) throw new Error("malformed live stream");
        break;
      }
      const head = new TextDecoder().decode(buf.subarray(0, end));
      const length = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? NaN);
      if (!Number.isFinite(length) || length > MAX_FRAME) throw new Error("malformed live stream");
      const start = end + HEADER_END.length;
      if (buf.length < start + length + 2) break; // the rest of the frame (and its CRLF) is coming
      onFrame(buf.slice(start, start + length));
      buf = buf.slice(start + length + 2);
    }
  }
}

// img → the object URL of the frame it shows, freed when the next frame replaces it or the view ends.
const frameUrls = new WeakMap();

/**
 * Show camera `cameraId`'s live frames in `img` until `signal` aborts or the stream ends, calling
 * `onFrame()` after each; resolves when the stream ends. `releaseFrame(img)` frees the last one.
 */
export function showLive(img, cameraId, signal, onFrame) {
  return request(`cameras/${seg(cameraId)}/live`, { raw: true, signal }).then((response) =>
    readParts(response, (jpeg) => {
      const previous = frameUrls.get(img);
      const next = URL.createObjectURL(new Blob([jpeg], { type: "image/jpeg" }));
      img.src = next;
      frameUrls.set(img, next);
      if (previous) URL.revokeObjectURL(previous);
      onFrame();
    }),
  );
}

/** Free the object URL of the frame `img` shows (its live view ended). */
export function releaseFrame(img) {
  const url = frameUrls.get(img);
  if (url) URL.revokeObjectURL(url);
  frameUrls.delete(img);
}

/** Open the live view of `cameraId` in a modal dialog. */
export function openLive(cameraId) {
  const controller = new AbortController();
  const img = h("img", { alt: t("camview.title", { camera: cameraId }), "data-testid": "live-view", class: "evidence-image" });
  const state = h("p", { class: "muted", "data-testid": "live-state" }, t("camview.connecting"));
  const close = h("button", { type: "button", "data-testid": "live-close" }, t("camview.close"));
  const dialog = h("dialog", { class: "live-dialog", "data-testid": "live-dialog" }, h("h2", null, t("camview.title", { camera: cameraId })), img, state, close);
  openModal(dialog, close, () => {
    controller.abort();
    releaseFrame(img);
  });
  showLive(img, cameraId, controller.signal, () => {
    state.textContent = t("camview.on");
    state.dataset.frames = String(Number(state.dataset.frames ?? 0) + 1);
  })
    .then(() => {
      if (!controller.signal.aborted) state.textContent = t("camview.ended", { error: "" });
    })
    .catch((err) => {
      if (err?.name === "AbortError") return;
      state.textContent = t("camview.ended", { error: err.message });
    });
}

/** A "live" button for a camera. */
export function liveButton(cameraId) {
  return h("button", { type: "button", class: "small", "data-testid": "live-button", dataset: { cameraId }, onclick: () => openLive(cameraId) }, t("camview.button"));
}
