// The wall's live thumbnails: the cameras of the most urgent active alerts, live, through the same
// authenticated MJPEG view as the live dialog (camview.js, GET cameras/{id}/live). Every stream
// holds a camera-ingest lease and an API viewer slot, so frames flow only while they are shown:
// at most MAX_THUMBS cameras, a stream ended as soon as its camera leaves that set (the alert
// closed, a more urgent one came, a filter hid it), and all of them while the tab is hidden and
// when the wall goes (ctx.onCleanup).

import { alertHref, alertName, h, plain } from "./dom.js";
import { t } from "./i18n.js";
import { releaseFrame, showLive } from "./camview.js";

// Two, not more: over HTTP/1.1 (the API without a proxy in front) a browser opens at most six
// connections to one origin, the live event stream holds one and every thumbnail holds one for as
// long as it shows; with four, the wall's own requests (its map, lists, images) shared the one left
// and in a full test run the wall's site map, most likely queued behind them, did not draw in 15 s.
const MAX_THUMBS = 2;
const RETRY_MS = 15_000; // a stream that ended (camera offline, too many viewers) is tried again
// An offline camera has no frames to show; its alert is about the camera itself.
const NO_FRAMES = new Set(["CAMERA_OFFLINE"]);

function urgency(a, b) {
  // Tier first (1 is the most urgent), then what no operator has taken, then the newest.
  if (a.tier !== b.tier) return (a.tier ?? 9) - (b.tier ?? 9);
  const ua = a.operator_ack_at ? 1 : 0;
  const ub = b.operator_ack_at ? 1 : 0;
  if (ua !== ub) return ua - ub;
  return new Date(b.created_at ?? 0).getTime() - new Date(a.created_at ?? 0).getTime();
}

/** The cameras to show for `alerts`: camera id → its most urgent alert, at most MAX_THUMBS. */
export function chooseCameras(alerts) {
  const chosen = new Map();
  for (const a of [...alerts].sort(urgency)) {
    if (a.source_kind !== "camera" || !a.source_id || NO_FRAMES.has(a.code) || chosen.has(a.source_id)) continue;
    chosen.set(a.source_id, a);
    if (chosen.size === MAX_THUMBS) break;
  }
  return chosen;
}

/**
 * Thumbnails in `box`. Returns update(alerts), to call with the alerts the wall shows whenever
 * they change; cheap when nothing did.
 */
export function wallThumbs(box, ctx) {
  const running = new Map(); // camera id → {el, stop(), alertId}
  let wanted = new Map();

  function start(cameraId, alert) {
    const controller = new AbortController();
    let retry = null;
    const img = h("img", { alt: t("thumbs.alt", { camera: cameraId }) });
    const state = h("span", { class: "muted", "data-testid": "thumb-state" }, t("camview.connecting"));
    const link = h("a", { href: alertHref(alert.alert_id) }, alertName(alert));
    const el = h(
      "figure",
      // Hidden until its first frame: a camera that cannot be watched takes no room on the wall.
      { class: "thumb", "data-testid": "wall-thumb", hidden: true, dataset: { cameraId, tier: String(alert.tier) } },
      img,
      h("figcaption", null, link, " · ", plain(cameraId), " ", state),
    );
    const connect = () => {
      state.textContent = t("camview.connecting");
      showLive(img, cameraId, controller.signal, () => {
        state.textContent = "";
        if (el.hidden) {
          el.hidden = false;
          paintBox();
        }
        el.dataset.frames = String(Number(el.dataset.frames ?? 0) + 1);
      })
        .catch((err) => err)
        .then((err) => {
          if (controller.signal.aborted) return;
          state.textContent = t("thumbs.ended");
          if (err?.status !== 401) retry = setTimeout(connect, RETRY_MS);
        });
    };
    connect();
    return {
      el,
      alertId: alert.alert_id,
      stop() {
        controller.abort();
        clearTimeout(retry);
        releaseFrame(img);
        el.remove();
      },
    };
  }

  function paintBox() {
    box.hidden = ![...running.values()].some((r) => !r.el.hidden);
  }

  function apply() {
    const show = document.visibilityState !== "hidden" && !ctx.signal.aborted ? wanted : new Map();
    for (const [cameraId, r] of running) {
      // Stopped too when the camera's most urgent alert changed: its caption names that alert.
      if (show.get(cameraId)?.alert_id !== r.alertId) {
        r.stop();
        running.delete(cameraId);
      }
    }
    let previous = null;
    for (const [cameraId, alert] of show) {
      let r = running.get(cameraId);
      if (!r) {
        r = start(cameraId, alert);
        running.set(cameraId, r);
      }
      const expected = previous ? previous.nextSibling : box.firstChild;
      if (r.el !== expected) box.insertBefore(r.el, expected);
      previous = r.el;
    }
    paintBox();
  }

  const onVisibility = () => apply();
  document.addEventListener("visibilitychange", onVisibility);
  ctx.onCleanup(() => {
    document.removeEventListener("visibilitychange", onVisibility);
    wanted = new Map();
    for (const r of running.values()) r.stop();
    running.clear();
  });
  box.hidden = true;

  return (alerts) => {
    wanted = chooseCameras(alerts);
    apply();
  };
}
