"""Issue 18: a notice (MQTT and webhook carry the same payload) says what happened in both languages."""

from __future__ import annotations

from datetime import UTC, datetime

from alerts.notices import build_notice


def test_a_notice_carries_its_summary_and_text_in_both_languages() -> None:
    params = {
        "variant": "above",
        "metric": "temperature",
        "value": -8.84,
        "limit": -18,
        "unit": "°C",
        "held_s": 15,
    }
    alert = {
        "alert_id": "a1", "enterprise_id": "e", "site_id": "s", "source_kind": "device", "source_id": "d",
        "code": "COLD_CHAIN_FREEZER_WARM", "severity": "major", "tier": 2, "summary": "engineering text",
        "status": "open", "evidence": {"params": params},
        "first_seen": datetime(2026, 12, 7, 4, 0, tzinfo=UTC),
        "deadline": datetime(2026, 12, 8, 4, 0, tzinfo=UTC),
        "leniency": "first_offence", "penalty_case": False, "prior_alert_id": None, "disposition": None,
    }  # fmt: skip
    issued = datetime(2026, 12, 7, 4, 1, tzinfo=UTC)
    notice = build_notice(alert, "opened", "a1:opened", public_url="http://x", issued_at=issued)
    assert notice["summary"] == "engineering text"
    assert notice["summary_zh"] == "冷冻库温度 -8.8 ℃，高于 -18 ℃ 已持续 15 秒"
    assert notice["summary_en"] == "Freezer at -8.8 °C, above -18 °C for 15 s"
    # 04:00 UTC is 12:00 in Shanghai, the default VIGIL_TIMEZONE; 24-hour, YYYY-MM-DD HH:mm.
    assert notice["text_zh"] == (
        "【冷冻库温度高于-18℃】冷冻库温度 -8.8 ℃，高于 -18 ℃ 已持续 15 秒。"
        "请于 2026-12-08 12:00 前完成整改并提交整改材料。"
    )
    assert notice["text_en"].endswith("Please rectify it and submit proof by 2026-12-08 12:00.")
    utc = build_notice(
        alert, "rejected", "a1:r:1", public_url="", issued_at=issued, reason="照片不清楚", timezone="UTC"
    )
    assert (
        utc["text_zh"]
        == "【冷冻库温度高于-18℃】整改未通过审核，请于 2026-12-08 04:00 前重新整改。原因：照片不清楚"
    )
