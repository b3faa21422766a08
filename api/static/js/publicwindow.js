// A site's public kitchen window (互联网+明厨亮灶; api/public_admin.py), for its enterprise (the
// enterprise page) and for the bureau (the sites page, in a dialog): publish the link, tick the
// cameras shown, unpublish, and read who did what. The server keeps only the link's hash, so the
// link and its QR code are shown once, in the answer to publishing; they live in this panel until
// the page goes, and the panel says so. A new publication replaces the link (the printed code
// stops working), so publishing again and unpublishing are confirmed first.

import { download, get, imageUrl, request, seg } from "./api.js";
import { fill, fmtTime, h, openModal, plain } from "./dom.js";
import { t } from "./i18n.js";
import { siteName } from "./names.js";

const HISTORY_LIMIT = 20;

/**
 * The panel of one site. `signal` aborts its requests when the view goes; `banner(text, kind)`
 * reports a failure. Returns {el, dispose}: dispose revokes the QR image's blob URL.
 */
export function publicWindowPanel(siteId, { signal, banner }) {
  const base = `sites/${seg(siteId)}/public-window`;
  let blob = null;
  let state = null;
  const status = h("p", { "data-testid": "pw-status" }, "…");
  const once = h("div", { class: "pw-once", "data-testid": "pw-once", hidden: true });
  const cameras = h("fieldset", { class: "pw-cameras", "data-testid": "pw-cameras" });
  const actions = h("div", { class: "actions" });
  const historyList = h("ol", { class: "pw-history", "data-testid": "pw-history" });
  const history = h("details", null, h("summary", null, t("pubwin.history")), historyList);
  const el = h(
    "section",
    { class: "panel pw", "data-testid": "public-window", dataset: { siteId } },
    h("h3", null, t("pubwin.title"), " · ", plain(siteName(siteId))),
    status,
    once,
    cameras,
    actions,
    history,
  );

  const failed = (err) => {
    if (err?.name !== "AbortError") banner(t("pubwin.failed", { error: err?.message ?? err }), "error");
  };

  function button(label, testid, onClick, cls = null) {
    const b = h("button", { type: "button", class: cls, "data-testid": testid }, label);
    b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        await onClick();
      } catch (err) {
        failed(err);
      } finally {
        b.disabled = false;
      }
    });
    return b;
  }

  function render() {
    fill(status, state.published ? t("pubwin.published", { at: fmtTime(state.issued_at), n: state.cameras.length }) : t("pubwin.unpublished"));
    status.dataset.published = String(state.published);
    const all = [...new Set([...state.site_cameras, ...state.cameras])].sort();
    fill(
      cameras,
      h("legend", null, t("pubwin.cameras")),
      all.length ? null : h("p", { class: "muted" }, t("pubwin.no_cameras")),
      all.length && !state.published ? h("p", { class: "muted" }, t("pubwin.cameras_hint")) : null,
      all.map((cameraId) => {
        const box = h("input", { type: "checkbox", checked: state.cameras.includes(cameraId), disabled: !state.published, dataset: { cameraId } });
        box.addEventListener("change", () => tick(box, cameraId));
        return h("label", { "data-testid": "pw-camera" }, box, plain(cameraId));
      }),
    );
    fill(
      actions,
      button(t(state.published ? "pubwin.republish" : "pubwin.publish"), "pw-publish", publish),
      state.published ? button(t("pubwin.unpublish"), "pw-unpublish", unpublish, "danger") : null,
    );
  }

  async function tick(box, cameraId) {
    box.disabled = true;
    try {
      await request(`${base}/cameras/${seg(cameraId)}`, { method: box.checked ? "PUT" : "DELETE", signal });
      state.cameras = box.checked ? [...state.cameras, cameraId].sort() : state.cameras.filter((c) => c !== cameraId);
      render();
      refreshHistory();
    } catch (err) {
      box.checked = !box.checked;
      box.disabled = false;
      failed(err);
    }
  }

  function forgetLink() {
    if (blob) URL.revokeObjectURL(blob);
    blob = null;
    once.hidden = true;
    once.replaceChildren();
  }

  async function publish() {
    if (state.published && !confirm(t("pubwin.confirm_republish"))) return;
    const link = await request(base, { method: "POST", signal });
    forgetLink();
    const { token: _token, url: _url, ...shown } = link; // the link lives only in the once-block
    state = shown;
    render();
    showLink(link);
    refreshHistory();
  }

  async function unpublish() {
    if (!confirm(t("pubwin.confirm_unpublish"))) return;
    await request(base, { method: "DELETE", signal });
    forgetLink();
    await load();
  }

  function showLink(link) {
    const img = h("img", { alt: t("pubwin.qr_alt"), "data-testid": "pw-qr", class: "pw-qr" });
    const print = button(t("pubwin.print"), "pw-print", () => printSheet(link.url, img));
    print.disabled = true; // until the image is there to print
    // The token travels in a POST body: a query string would end up in access logs.
    imageUrl(`${base}/qr.png`, signal, { token: link.token })
      .then((url) => {
        blob = url;
        img.src = url;
        print.disabled = false;
      })
      .catch(failed);
    const svg = button(t("pubwin.svg"), "pw-svg", () => download(`${base}/qr.svg`, undefined, `qr-${siteId}.svg`, { token: link.token }), "ghost");
    fill(
      once,
      h("strong", null, t("pubwin.once_title")),
      h("p", null, t("pubwin.once_note")),
      h("p", null, h("code", { class: "pw-url", translate: "no", "data-testid": "pw-url" }, link.url)),
      img,
      h("div", { class: "actions" }, print, svg),
    );
    once.hidden = false;
  }

  /** Print only a sheet with the code (app.css hides the rest of the page while printing). */
  async function printSheet(url, img) {
    const sheet = h(
      "div",
      { class: "pw-print" },
      h("h1", null, t("pubwin.print_title")),
      h("p", null, plain(siteName(siteId))),
      h("img", { src: img.src, alt: t("pubwin.qr_alt") }),
      h("p", null, plain(url)),
      h("p", null, t("pubwin.print_hint")),
    );
    document.body.append(sheet);
    document.body.classList.add("printing-pw");
    const done = () => {
      sheet.remove();
      document.body.classList.remove("printing-pw");
      window.removeEventListener("afterprint", done);
    };
    window.addEventListener("afterprint", done);
    await sheet.querySelector("img").decode().catch(() => {});
    window.print();
  }

  function actionText(e) {
    return t(`pubwin.action.${e.action}`, { camera: e.camera_id ?? "" });
  }

  async function refreshHistory() {
    if (!history.open) return;
    try {
      const { items } = await get(`${base}/audit`, { limit: HISTORY_LIMIT }, signal);
      fill(
        historyList,
        items.length
          ? items.map((e) =>
              h("li", { "data-testid": "pw-event", dataset: { action: e.action } }, `${fmtTime(e.at)} · `, actionText(e), " · ", e.actor ? plain(e.actor) : t("pubwin.by_bureau")),
            )
          : h("li", { class: "muted" }, t("pubwin.history_empty")),
      );
    } catch (err) {
      failed(err);
    }
  }
  history.addEventListener("toggle", refreshHistory);

  async function load() {
    state = await get(base, null, signal);
    render();
    refreshHistory();
  }
  load().catch(failed);

  return { el, dispose: forgetLink };
}

/** The enterprise page's section: one panel per own site (GET /ui/names lists them). */
export function publicWindowSection(ctx) {
  const section = h("section", { class: "panel", "data-testid": "public-windows" }, h("h2", null, t("pubwin.title")), h("p", { class: "muted" }, t("pubwin.intro")));
  const panels = [];
  ctx.onCleanup(() => panels.forEach((p) => p.dispose()));
  get("ui/names", null, ctx.signal)
    .then((names) => {
      const ids = Object.keys(names.sites ?? {}).sort();
      if (!ids.length) section.hidden = true;
      for (const id of ids) {
        const panel = publicWindowPanel(id, { signal: ctx.signal, banner: ctx.banner });
        panels.push(panel);
        section.append(panel.el);
      }
    })
    .catch((err) => {
      if (err?.name !== "AbortError") ctx.banner(t("pubwin.failed", { error: err?.message ?? err }), "error");
    });
  return section;
}

/**
 * The sites page's button: the panel in a modal dialog on document.body, so that the page's
 * re-render (every alert change, every 30 s) cannot take away a link shown once.
 */
export function publicWindowButton(siteId, banner) {
  const open = () => {
    const controller = new AbortController();
    const panel = publicWindowPanel(siteId, { signal: controller.signal, banner });
    const close = h("button", { type: "button", class: "ghost", "data-testid": "pw-close" }, t("pubwin.close"));
    const dialog = h("dialog", { class: "pw-dialog", "data-testid": "pw-dialog" }, panel.el, close);
    openModal(dialog, close, () => {
      controller.abort();
      panel.dispose();
    });
  };
  return h("button", { type: "button", class: "small ghost", "data-testid": "pw-open", dataset: { siteId }, onclick: open }, t("pubwin.title"));
}
