"""The enterprise's own API over HTTP: its inbox, its alerts, rectifications with real photos, its
history and compliance score, on alerts opened by the real store in the real PostgreSQL."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from alerts import lifecycle
from tests.api.conftest import bearer, make_key
from tests.lifecycle import OPERATOR, POLICY, Site, act, open_alert, rows, staffed_site, submit, violation

BASE = "/api/v1/enterprise"
GPS_MARKER = b"GPS-31.2304N-121.4737E-secret"
HIDDEN = b"<script>hidden payload</script>"


def jpeg_with_exif(width: int = 64, height: int = 48) -> bytes:
    """A real JPEG with an EXIF (APP1) segment carrying a marker, as a phone would write GPS."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2] = (0, 0, 255)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    data = encoded.tobytes()
    exif = b"Exif\x00\x00" + GPS_MARKER
    app1 = b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif
    return data[:2] + app1 + data[2:]


def png_with_trailer(width: int = 40, height: int = 30) -> bytes:
    image = np.full((height, width, 3), 200, np.uint8)
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes() + HIDDEN  # bytes after IEND: ignored by decoders, kept by naive stores


@pytest.fixture
async def own(pool, site: Site) -> dict[str, str]:
    return bearer(await make_key(pool, "enterprise", site.enterprise_id))


@pytest.fixture
async def other(pool, uid: str) -> dict[str, str]:
    """Another enterprise's key; it has no alerts of its own."""
    stranger = await staffed_site(pool, f"other{uid}")
    return bearer(await make_key(pool, "enterprise", stranger.enterprise_id))


def ok(r: httpx.Response, code: int = 200) -> Any:
    assert r.status_code == code, r.text
    return r.json()


def rectify(
    client: httpx.AsyncClient,
    alert_id: str,
    headers: dict[str, str],
    photos: list[tuple[str, bytes, str]],
    description: str = "bin lid replaced, staff briefed",
):
    files: list[tuple[str, Any]] = [("description", (None, description))]
    files += [("photos", photo) for photo in photos]
    return client.post(f"{BASE}/alerts/{alert_id}/rectification", files=files, headers=headers)


async def test_an_enterprise_sees_its_own_notices_and_alerts_only(client, pool, site: Site, own, other):
    a = await open_alert(pool, violation(site))
    alert_id = a["alert_id"]

    notices = ok(await client.get(f"{BASE}/notices", headers=own))
    assert [n["notice_id"] for n in notices["items"]] == [f"{alert_id}:opened"]
    assert notices["items"][0]["read_at"] is None and notices["next_cursor"] is None
    assert notices["items"][0]["payload"]["alert_id"] == alert_id
    listed = ok(await client.get(f"{BASE}/alerts", headers=own))
    assert [i["alert_id"] for i in listed["items"]] == [alert_id]
    detail = ok(await client.get(f"{BASE}/alerts/{alert_id}", headers=own))
    assert detail["enterprise_id"] == site.enterprise_id
    assert [n["kind"] for n in detail["notices"]] == ["opened"] and detail["rectifications"] == []
    assert detail["history"] and detail["history"][0]["to_status"] == "open"

    for path in ("/notices", "/alerts", "/history"):
        assert ok(await client.get(BASE + path, headers=other))["items"] == []
    r = await client.get(f"{BASE}/alerts/{alert_id}", headers=other)
    assert r.status_code == 404 and site.enterprise_id not in r.text
    assert ok(await client.get(f"{BASE}/compliance", headers=other))["violations"] == 0


async def test_alert_filters_and_pagination(client, pool, site: Site, own):
    first = await open_alert(pool, violation(site, "KITCHEN_SMOKING", source="cam-1"))
    second = await open_alert(pool, violation(site, "KITCHEN_NO_MASK", source="cam-2"))
    page = ok(await client.get(f"{BASE}/alerts", params={"limit": 1}, headers=own))
    assert [i["alert_id"] for i in page["items"]] == [second["alert_id"]] and page["next_cursor"]
    rest = ok(await client.get(f"{BASE}/alerts", params={"cursor": page["next_cursor"]}, headers=own))
    assert [i["alert_id"] for i in rest["items"]] == [first["alert_id"]] and rest["next_cursor"] is None
    smoking = ok(await client.get(f"{BASE}/alerts", params={"code": "KITCHEN_SMOKING"}, headers=own))
    assert [i["alert_id"] for i in smoking["items"]] == [first["alert_id"]]
    closed = ok(await client.get(f"{BASE}/alerts", params={"status": "closed"}, headers=own))
    assert closed["items"] == []
    later = ok(await client.get(f"{BASE}/alerts", params={"since": "2999-01-01T00:00:00"}, headers=own))
    assert later["items"] == []
    assert (await client.get(f"{BASE}/alerts", params={"cursor": "nope"}, headers=own)).status_code == 400

    notices = ok(await client.get(f"{BASE}/notices", params={"limit": 1}, headers=own))
    more = ok(await client.get(f"{BASE}/notices", params={"cursor": notices["next_cursor"]}, headers=own))
    assert [n["alert_id"] for n in notices["items"] + more["items"]] == [
        second["alert_id"],
        first["alert_id"],
    ]


async def test_read_receipt_is_kept_once_and_filters_the_inbox(client, pool, site: Site, own, other):
    a = await open_alert(pool, violation(site))
    notice_id = f"{a['alert_id']}:opened"
    url = f"{BASE}/notices/{notice_id}/read"
    assert (await client.post(url, headers=other)).status_code == 404
    receipt = ok(await client.post(url, headers=own))
    assert receipt["notice_id"] == notice_id and receipt["read_at"]
    assert ok(await client.post(url, headers=own))["read_at"] == receipt["read_at"]  # the first read stays
    unread = ok(await client.get(f"{BASE}/notices", params={"unread": "true"}, headers=own))
    assert unread["items"] == []
    [notice] = ok(await client.get(f"{BASE}/notices", headers=own))["items"]
    assert notice["read_at"] == receipt["read_at"]
    audit = await rows(
        pool, "SELECT actor FROM alert_audit WHERE alert_id=%s AND action='notice_read'", a["alert_id"]
    )
    assert len(audit) == 1 and audit[0][0].startswith(f"enterprise:{site.enterprise_id}:")
    assert (await client.post(f"{BASE}/notices/{a['alert_id']}:nope/read", headers=own)).status_code == 404


async def test_acknowledge(client, pool, site: Site, own, other):
    a = await open_alert(pool, violation(site))
    url = f"{BASE}/alerts/{a['alert_id']}/acknowledge"
    assert (await client.post(url, json={"note": "on it"}, headers=other)).status_code == 404
    assert ok(await client.post(url, json={"note": "on it"}, headers=own))["status"] == "acknowledged"
    again = await client.post(url, headers=own)  # the body is optional
    assert again.status_code == 409 and "acknowledged" in again.json()["detail"]
    [(actor, reason)] = await rows(
        pool,
        "SELECT actor, reason FROM alert_audit WHERE alert_id=%s AND action='acknowledged'",
        a["alert_id"],
    )
    assert actor.startswith(f"enterprise:{site.enterprise_id}:") and reason == "on it"


async def test_rectification_stores_clean_jpegs_served_to_owner_and_operator_only(
    client, pool, app, site: Site, own, other
):
    a = await open_alert(pool, violation(site))
    alert_id = a["alert_id"]
    jpeg, png = jpeg_with_exif(), png_with_trailer()
    assert GPS_MARKER in jpeg and HIDDEN in png

    r = await rectify(
        client, alert_id, own, [("sink.jpg", jpeg, "image/jpeg"), ("floor.png", png, "image/png")]
    )
    receipt = ok(r, 201)
    assert receipt["alert"]["status"] == "rectification_submitted"
    shas = receipt["photos"]
    assert len(shas) == 2 and hashlib.sha256(jpeg).hexdigest() not in shas
    store = app.state.evidence
    sizes = []
    for sha in shas:
        stored = store.get(sha)
        assert stored is not None and hashlib.sha256(stored).hexdigest() == sha
        assert stored.startswith(b"\xff\xd8\xff") and GPS_MARKER not in stored and HIDDEN not in stored
        decoded = cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_COLOR)
        sizes.append(decoded.shape[:2])
    assert sizes == [(48, 64), (30, 40)]

    detail = ok(await client.get(f"{BASE}/alerts/{alert_id}", headers=own))
    [rect] = detail["rectifications"]
    assert rect["photos"] == shas and rect["description"] == "bin lid replaced, staff briefed"
    assert rect["submitted_by"].startswith(f"enterprise:{site.enterprise_id}:")

    url = f"/api/v1/alerts/{alert_id}/evidence/{shas[0]}"
    mine = await client.get(url, headers=own)
    assert mine.status_code == 200 and mine.headers["content-type"] == "image/jpeg"
    # Never sniffed into anything else (a polyglot upload was re-encoded, and the header says so too).
    assert mine.headers["x-content-type-options"] == "nosniff"
    assert mine.headers["content-disposition"] == f'inline; filename="{shas[0]}.jpg"'
    assert mine.content == store.get(shas[0])
    assert (await client.get(url)).status_code == 200  # the operator token
    assert (await client.get(url, headers=other)).status_code == 404
    # The hash is bound to its alert: another alert of the same enterprise does not serve it.
    b = await open_alert(pool, violation(site, source="cam-2"))
    assert (
        await client.get(f"/api/v1/alerts/{b['alert_id']}/evidence/{shas[0]}", headers=own)
    ).status_code == 404


async def test_the_detectors_snapshot_is_served_to_the_owning_enterprise(
    client, pool, app, site: Site, own, other
):
    snapshot = app.state.evidence.put(jpeg_with_exif())
    a = await open_alert(pool, dataclasses.replace(violation(site), evidence={"snapshot_sha256": snapshot}))
    url = f"/api/v1/alerts/{a['alert_id']}/evidence/{snapshot}"
    assert (await client.get(url, headers=own)).status_code == 200
    assert (await client.get(url)).status_code == 200
    assert (await client.get(url, headers=other)).status_code == 404
    assert (await client.get(url.replace(snapshot, "0" * 64), headers=own)).status_code == 404


async def test_rectification_without_photos(client, pool, site: Site, own):
    a = await open_alert(pool, violation(site))
    receipt = ok(await rectify(client, a["alert_id"], own, [], description="  moved the bin  "), 201)
    assert receipt["photos"] == []
    [(description, photos)] = await rows(
        pool, "SELECT description, photos FROM rectifications WHERE alert_id=%s", a["alert_id"]
    )
    assert description == "moved the bin" and photos == []


JPEG = ("sink.jpg", jpeg_with_exif(), "image/jpeg")
TEXT = b"these are not pixels"


@pytest.mark.parametrize(
    ("photos", "description", "code", "detail"),
    [
        pytest.param([("notes.jpg", TEXT, "image/jpeg")], "fixed", 415, "not image/jpeg", id="text-as-jpeg"),
        pytest.param([("notes.jpg", TEXT, "text/plain")], "fixed", 415, "text/plain", id="text-plain"),
        pytest.param([("sink.png", JPEG[1], "image/png")], "fixed", 415, "not image/png", id="jpeg-as-png"),
        pytest.param(
            [("broken.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 64, "image/jpeg")],
            "fixed",
            422,
            "readable",
            id="corrupt-jpeg",
        ),
        pytest.param(
            [("broken.png", png_with_trailer()[:60], "image/png")],
            "fixed",
            422,
            "does not decode",
            id="truncated-png",
        ),
        pytest.param([("empty.jpg", b"", "image/jpeg")], "fixed", 422, "empty", id="empty-file"),
        pytest.param(
            [("huge.jpg", b"\xff\xd8\xff" + b"\x00" * (5 * 1024 * 1024), "image/jpeg")],
            "fixed",
            413,
            "5 MiB",
            id="over-5-mib",
        ),
        pytest.param([JPEG] * 11, "fixed", 422, "at most 10 photos", id="eleven-photos"),
        pytest.param([JPEG], "", 422, "description", id="empty-description"),
        pytest.param([JPEG], "   ", 422, "description", id="blank-description"),
        pytest.param([JPEG], "x" * 4001, 422, "4000", id="long-description"),
    ],
)
async def test_rectification_refusals_store_nothing(
    client, pool, site: Site, own, photos, description, code, detail
):
    a = await open_alert(pool, violation(site))
    r = await rectify(client, a["alert_id"], own, photos, description=description)
    assert r.status_code == code, r.text
    assert detail in r.json()["detail"]
    assert await rows(pool, "SELECT 1 FROM rectifications WHERE alert_id=%s", a["alert_id"]) == []
    assert (await rows(pool, "SELECT status FROM alerts WHERE alert_id=%s", a["alert_id"]))[0][0] == "open"


async def test_rectification_refuses_oversized_dimensions_and_wrong_forms(client, pool, site: Site, own):
    a = await open_alert(pool, violation(site))
    url = f"{BASE}/alerts/{a['alert_id']}/rectification"
    # A tiny PNG whose header claims 9000x10 pixels is refused before it is decoded.
    ok_, wide = cv2.imencode(".png", np.zeros((10, 9000), np.uint8))
    assert ok_
    r = await rectify(client, a["alert_id"], own, [("wide.png", wide.tobytes(), "image/png")])
    assert r.status_code == 422 and "9000x10" in r.json()["detail"]
    assert (await client.post(url, json={"description": "fixed"}, headers=own)).status_code == 415
    r = await client.post(url, files=[("photo", ("a.jpg", jpeg_with_exif(), "image/jpeg"))], headers=own)
    assert r.status_code == 422 and "photo" in r.json()["detail"]
    r = await client.post(
        url, files=[("description", (None, "fixed")), ("photos", (None, "text"))], headers=own
    )
    assert r.status_code == 422 and "files" in r.json()["detail"]
    r = await client.post(
        url,
        content=b"--x\r\nnot multipart",
        headers={**own, "content-type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code == 400


async def test_rectification_on_a_closed_alert_is_a_conflict(client, pool, site: Site, own, other):
    a = await open_alert(pool, violation(site))
    await submit(pool, site, a["alert_id"])
    await act(pool, lifecycle.verify, a["alert_id"], actor=OPERATOR, policy=POLICY)
    photo = [("sink.jpg", jpeg_with_exif(), "image/jpeg")]
    r = await rectify(client, a["alert_id"], own, photo)
    assert r.status_code == 409
    assert r.json()["detail"].startswith("cannot submit rectification an alert that is closed")
    assert (await rectify(client, a["alert_id"], other, photo)).status_code == 404
    assert (await rectify(client, "no-such-alert", own, photo)).status_code == 404


async def test_history_and_compliance(client, pool, site: Site, own):
    a = await open_alert(pool, violation(site))  # KITCHEN_SMOKING: major
    b = await open_alert(pool, violation(site, source="cam-2"))
    c = await open_alert(pool, violation(site, source="cam-3"))
    report = ok(await client.get(f"{BASE}/compliance", headers=own))
    # Unreviewed detections cost nothing (issue 18.7): reported as unconfirmed, not as violations.
    assert report["score"] == 100 and report["still_open"] == 0 and report["on_time_rate"] is None
    assert report["violations"] == 0 and report["unconfirmed"] == 3

    photo = [("sink.jpg", jpeg_with_exif(), "image/jpeg")]
    ok(await rectify(client, a["alert_id"], own, photo), 201)
    await act(pool, lifecycle.verify, a["alert_id"], actor=OPERATOR, policy=POLICY)
    await act(pool, lifecycle.dismiss, b["alert_id"], actor=OPERATOR, reason="a shadow", policy=POLICY)

    history = ok(await client.get(f"{BASE}/history", headers=own))
    assert [(i["alert_id"], i["disposition"]) for i in history["items"]] == [
        (b["alert_id"], "false_alarm"),
        (a["alert_id"], "warning"),
    ]
    page = ok(await client.get(f"{BASE}/history", params={"limit": 1}, headers=own))
    rest = ok(await client.get(f"{BASE}/history", params={"cursor": page["next_cursor"]}, headers=own))
    assert [i["alert_id"] for i in page["items"] + rest["items"]] == [b["alert_id"], a["alert_id"]]
    warnings = ok(await client.get(f"{BASE}/history", params={"disposition": "warning"}, headers=own))
    assert [i["alert_id"] for i in warnings["items"]] == [a["alert_id"]]
    assert c["alert_id"] not in str(history)

    report = ok(await client.get(f"{BASE}/compliance", params={"days": 30}, headers=own))
    assert report["window_days"] == 30 and report["false_alarms"] == 1 and report["violations"] == 1
    assert report["unconfirmed"] == 1  # c: still unreviewed, within its deadline
    assert report["rectified_on_time"] == 1 and report["on_time_rate"] == 1.0
    assert report["score"] == 100 - 8 + 4 == 96 and "formula" in report
    assert (await client.get(f"{BASE}/compliance", params={"days": 0}, headers=own)).status_code == 422


async def test_staff_are_refused_every_enterprise_route(app, client, pool, operator_key: str):
    operator = bearer(operator_key)
    paths = [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith(BASE + "/")
        for method in operations
    ]
    assert len(paths) == 10  # incl. alerts.csv and alerts.xlsx
    for method, path in paths:
        url = path.replace("{alert_id}", "a-1").replace("{notice_id}", "a-1:opened")
        for headers in (operator, {}):  # an operator key, and the static operator token
            r = await client.request(method, url, headers=headers)
            assert r.status_code == 403, (method, path, r.text)
        assert (await client.request(method, url, headers={"Authorization": ""})).status_code == 401


async def test_openapi_documents_every_refusal(app) -> None:
    doc = app.openapi()
    upload = doc["paths"][f"{BASE}/alerts/{{alert_id}}/rectification"]["post"]
    assert {"201", "401", "403", "404", "409", "413", "415", "422", "503"} <= set(upload["responses"])
    assert "multipart/form-data" in upload["requestBody"]["content"]
    for path, operations in doc["paths"].items():
        if path.startswith(BASE + "/"):
            for operation in operations.values():
                assert operation["summary"] and {"401", "403"} <= set(operation["responses"]), path
    assert "ComplianceReport" in doc["components"]["schemas"]
