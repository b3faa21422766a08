"""The old cold-chain interface (`ColdChainRule.evaluate`), now over the rule engine: durations,
hysteresis, per-device limits, replays. The engine's own tests are in tests/detectors/rules/."""

from __future__ import annotations

from detectors.cold_chain import ColdChainRule
from vigil.events import Telemetry

T0 = 1_763_000_000_000
MIN = 60_000


def reading(temp: float, at_min: float, device: str = "f1", profile: str = "freezer") -> Telemetry:
    return Telemetry("ent", device, "site", profile, T0 + int(at_min * MIN), {"temperature": temp}, T0)


def run(
    rule: ColdChainRule, temps: list[tuple[float, float]], attrs: dict[str, object] | None = None, **kw: str
):
    out = []
    for at, temp in temps:
        out += rule.evaluate(reading(temp, at, **kw), attrs or {})
    return out


def test_freezer_too_warm_raises_only_after_the_duration():
    rule = ColdChainRule()
    early = run(rule, [(0, -20), (1, -15), (10, -14), (15.5, -13.5), (16.5, -13)])
    assert [v.state for v in early] == ["active"]
    v = early[0]
    assert v.code == "COLD_CHAIN_FREEZER_WARM"
    assert v.window_start == T0 + MIN  # the excursion started at the first warm reading
    # Raised at the moment the 15 minutes were up (16 min), on the reading then held (-13.5 °C);
    # the reading at 16.5 min only revealed it.
    assert v.detected_at == T0 + 16 * MIN
    assert v.evidence["highest"] == -13.5 and v.evidence["values"] == {"temperature": -13.5}
    assert v.severity == "major" and v.source_id == "f1"


def test_short_excursion_such_as_a_door_opening_raises_nothing():
    rule = ColdChainRule()
    assert run(rule, [(0, -20), (1, -10), (5, -12), (6, -19), (30, -19)]) == []


def test_clears_only_below_the_hysteresis_band_and_once():
    rule = ColdChainRule()
    out = run(rule, [(0, -10), (16, -10), (17, -17.8), (18, -18.0), (19, -18.6), (20, -19)])
    assert [v.state for v in out] == ["active", "cleared"]  # -17.8 and -18.0 are inside the band
    assert out[0].violation_id == out[1].violation_id
    assert out[1].detected_at == T0 + 19 * MIN


def test_device_attributes_override_the_profile_limit():
    rule = ColdChainRule()
    # A blast freezer rated -25 °C: -20 is too warm for it.
    out = run(rule, [(0, -20), (2, -20)], {"max_temp_c": -25, "duration_s": 60})
    assert [v.state for v in out] == ["active"]
    assert out[0].evidence["limits"]["max_temp_c"] == -25


def test_chiller_too_cold_is_a_violation_too():
    rule = ColdChainRule()
    out = run(rule, [(0, -1.0), (16, -2.0)], profile="chiller")
    assert [v.code for v in out] == ["COLD_CHAIN_CHILLER_OUT_OF_RANGE"]
    # Raised when the 15 minutes were up, on the value held then; -2.0 came after.
    assert out[0].detected_at == T0 + 15 * MIN and out[0].evidence["lowest"] == -1.0


def test_replay_of_the_same_readings_gives_the_same_violation_id():
    temps = [(0, -10), (16, -10)]
    assert run(ColdChainRule(), temps)[0].violation_id == run(ColdChainRule(), temps)[0].violation_id


def test_late_and_repeated_readings_are_ignored():
    rule = ColdChainRule()
    out = run(rule, [(0, -10), (16, -10), (16, -30), (3, -30), (17, -10)])
    assert [v.state for v in out] == ["active"]


def test_devices_are_independent_and_unknown_profiles_ignored():
    rule = ColdChainRule()
    out = run(rule, [(0, -10), (16, -10)], device="a") + run(rule, [(0, -19), (16, -19)], device="b")
    assert [v.source_id for v in out] == ["a"]
    assert run(rule, [(0, 50), (30, 50)], profile="boiler") == []
