"""Issue 18: what the rules put in `evidence["params"]`, rendered for people in both languages."""

from __future__ import annotations

from tests.detectors.rules.support import MIN, Rig, of
from vigil.summaries import render, render_both


def test_freezer_warm_reads_as_the_issue_asks() -> None:
    rig = Rig("freezer", {"duration_s": 15})
    rig.t(0, temperature=-20)
    rig.t(1, temperature=-8.84)
    [v] = rig.t(16, temperature=-8.84)
    assert v.evidence["params"] == {
        "variant": "above", "metric": "temperature", "value": -8.84, "limit": -18.0, "unit": "°C",
        "held_s": 15.0,
    }  # fmt: skip
    assert render(v.code, v.evidence, "zh-CN") == "冷冻库温度 -8.8 ℃，高于 -18 ℃ 已持续 15 秒"
    assert render(v.code, v.evidence, "en") == "Freezer at -8.8 °C, above -18 °C for 15 s"
    assert "temperature -8.84 °C" in v.summary  # the engineering text stays, for logs


def test_a_chiller_names_the_side_it_left_by() -> None:
    rig = Rig("chiller")
    rig.series("temperature", [(i * MIN, -1.5) for i in range(17)])
    [cold] = of(rig.log, "COLD_CHAIN_CHILLER_OUT_OF_RANGE")
    assert render_both(cold.code, cold.evidence) == {
        "summary_zh": "冷藏库温度 -1.5 ℃，低于 0 ℃ 已持续 15 分钟",
        "summary_en": "Chiller at -1.5 °C, below 0 °C for 15 min",
    }


def test_composite_and_event_rules() -> None:
    lift = Rig("elevator")
    lift.series("speed_mps", [(i, 0.0) for i in range(32)], in_door_zone=0, passenger=1, door_open=0)
    [trapped] = of(lift.log, "ELEVATOR_TRAPPED_PASSENGER")
    assert render(trapped.code, trapped.evidence, "zh-CN") == "电梯停在平层区外，轿厢内有乘客 已持续 30 秒"
    for i in range(5):
        lift.ev(100 + i * 10, "door_reopen")
    [reopen] = of(lift.log, "ELEVATOR_DOOR_REOPEN_REPEATED")
    assert render(reopen.code, reopen.evidence, "zh-CN") == "电梯门在 40 秒 内反复开启 5 次"
    assert render(reopen.code, reopen.evidence, "en") == "Lift doors reopened 5 times within 40 s"

    boiler = Rig("boiler")
    boiler.series("pressure_mpa", [(i, 1.372) for i in range(12)])
    [over] = of(boiler.log, "BOILER_OVER_PRESSURE")
    assert (
        render(over.code, over.evidence, "zh-CN") == "锅炉压力 1.37 MPa，超过额定压力 1.25 MPa 已持续 10 秒"
    )

    freezer = Rig("freezer")
    freezer.ev(0, "door_open")
    [door] = of(freezer.tick(11 * MIN), "COLD_CHAIN_DOOR_LEFT_OPEN")
    assert render(door.code, door.evidence, "en") == "Cold-room door open for 10 min (allowed 10 min)"


def test_offline_and_impossible_readings() -> None:
    rig = Rig("freezer")
    [bad] = rig.t(0, temperature=99.0)
    assert render(bad.code, bad.evidence, "zh-CN") == (
        "传感器读数不可能：温度 99 ℃，超出物理范围 -60 ℃ 至 60 ℃，传感器可能损坏或被改动"
    )
    [offline] = of(rig.tick(10 * MIN), "DEVICE_OFFLINE")
    assert render(offline.code, offline.evidence, "zh-CN") == "设备已超过 5 分钟 没有发送任何消息"
    assert render(offline.code, offline.evidence, "en") == "No message from the device for 5 min"
