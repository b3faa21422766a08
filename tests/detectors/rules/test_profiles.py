"""Profiles are data, validated at load with errors that name the file and the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.rules import ProfileError, Rulebook, load_profile_text, load_profiles
from detectors.rules.expr import ExpressionError, Limit, compile_condition, parse_condition, parse_limit, text
from vigil.catalogue import catalogue

HEAD = """
events = ["door_open", "door_closed"]
[metrics]
temperature = { unit = "°C", min = -60, max = 60 }
humidity = { unit = "%RH", min = 0, max = 100 }
[attributes]
max_temp_c = -18
"""


def load(rules: str, head: str = HEAD) -> object:
    return load_profile_text(head + rules, "freezer", "profiles/freezer.toml")


def error(rules: str, head: str = HEAD) -> str:
    with pytest.raises(ProfileError) as caught:
        load(rules, head)
    return str(caught.value)


def rule(code: str, kind: str, **fields: object) -> str:
    lines = [f"{key} = {value!r}".replace("'", '"') for key, value in fields.items()]
    return "\n".join(["[[rules]]", f'code = "{code}"', f'kind = "{kind}"', *lines, ""])


GOOD = """
[[rules]]
code = "COLD_CHAIN_FREEZER_WARM"
kind = "threshold"
when = "temperature > attr:max_temp_c"
"""


# --- the shipped profiles ---------------------------------------------------------------------------


def test_every_equipment_type_of_the_contract_has_a_profile():
    profiles = load_profiles()
    assert set(profiles) == {
        "freezer", "chiller", "elevator", "boiler", "pressure_vessel", "gas_filling", "gas_detector"
    }  # fmt: skip
    assert load_profiles(Path("detectors/profiles")).keys() == profiles.keys()


def test_every_device_code_of_the_catalogue_is_raised_by_some_profile():
    used = {rule.code for p in load_profiles().values() for rule in p.rules}
    device_codes = {
        code for code, kind in catalogue().items()
        if kind.domain in ("cold_chain", "elevator", "boiler", "pressure_vessel", "gas_cylinder")
    }  # fmt: skip
    # Raised by every profile without a rule of their own: offline and impossible readings.
    assert used == device_codes
    assert {"DEVICE_OFFLINE", "SENSOR_OUT_OF_RANGE"} <= set(catalogue())


def test_the_contract_metric_ranges():
    p = load_profiles()
    assert {m: (x.min, x.max, x.unit) for m, x in p["elevator"].metrics.items()} == {
        "speed_mps": (0, 20, "m/s"), "position_m": (-5, 1000, "m"), "door_open": (0, 1, "0/1"),
        "in_door_zone": (0, 1, "0/1"), "passenger": (0, 1, "0/1"),
    }  # fmt: skip
    assert (p["boiler"].metrics["water_level_mm"].min, p["boiler"].metrics["water_level_mm"].max) == (
        -500,
        1000,
    )
    assert p["pressure_vessel"].metrics["pressure_mpa"].max == 40
    assert p["gas_detector"].metrics["gas_lel_pct"].max == 100
    assert p["gas_filling"].metrics == {}


def test_a_good_profile_loads():
    profile = load(GOOD)
    assert profile.name == "freezer" and profile.events == {"door_open", "door_closed"}  # type: ignore[attr-defined]


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            GOOD.replace("COLD_CHAIN_FREEZER_WARM", "FREEZER_ON_FIRE"),
            "code: 'FREEZER_ON_FIRE' is not a code of the violation catalogue",
        ),
        (
            GOOD.replace('"threshold"', '"thershold"'),
            "kind: expected 'threshold', 'event_count', 'event', 'state_timer' or 'date_compare', "
            "got 'thershold'",
        ),
        (GOOD + "for = 10\n", "unknown keys ['for'] for a threshold rule"),
        (GOOD.replace("temperature >", "temprature >"), "when: unknown metric 'temprature'"),
        (GOOD.replace("> attr:max_temp_c", "> > 5"), "when: expected a number, got '>' at column 15"),
        (GOOD.replace("attr:max_temp_c", "attr:rated_c"), "when: attr:rated_c has no default"),
        (GOOD + "for_s = -5\n", "for_s: expected a duration of at least 0 seconds, got -5"),
        (GOOD + 'for_s = "soon"\n', "for_s: expected a number, got 'soon'"),
        (
            GOOD + 'severity = "apocalyptic"\n',
            "severity: expected 'info', 'minor', 'major' or 'critical', got 'apocalyptic'",
        ),
        (GOOD + "escalate_after_s = 60\n", "escalate_after_s and escalate_to go together"),
        (
            GOOD + 'escalate_after_s = 60\nescalate_to = "minor"\n',
            "escalate_to minor must be more severe than severity major",
        ),
        (GOOD + GOOD, "rule #2 (COLD_CHAIN_FREEZER_WARM): code COLD_CHAIN_FREEZER_WARM is already used"),
        (
            rule(
                "COLD_CHAIN_DOOR_LEFT_OPEN",
                "state_timer",
                start_event="door_open",
                stop_event="door_shut",
                for_s=60,
            ),
            "stop_event: 'door_shut' is not one of the profile's events",
        ),
        (
            rule(
                "COLD_CHAIN_DOOR_LEFT_OPEN", "state_timer", start_event="door_open", stop_event="door_closed"
            ),
            "for_s: missing (required)",
        ),
        (
            rule("ELEVATOR_DOOR_REOPEN_REPEATED", "event_count", event="door_open", count=0, window_s=5),
            "count: expected a whole number of at least 1, got 0",
        ),
        (
            rule("PRESSURE_VESSEL_SAFETY_VALVE_LIFT", "event", event="door_open"),
            "needs quiet_s, clear_event or both",
        ),
        (
            rule("GAS_CYLINDER_INSPECTION_OVERDUE", "date_compare", event="door_open", field="due", op=">"),
            "op: expected '<' (before the event's date) or '<=' (not after it), got '>'",
        ),
    ],
)
def test_rule_errors_name_the_file_the_rule_and_the_fault(rules: str, message: str):
    found = error(rules)
    assert found.startswith("profiles/freezer.toml: rule #")
    assert message in found


@pytest.mark.parametrize(
    ("head", "message"),
    [
        ('colour = "blue"\n' + HEAD, "unknown keys ['colour']"),
        ('profile = "chiller"\n' + HEAD, "does not match the file name 'freezer'"),
        (
            HEAD.replace("min = -60", "min = 80"),
            "metrics.temperature: expected min < max, got min = 80 and max = 60",
        ),
        (HEAD.replace('unit = "°C", ', ""), "metrics.temperature.unit: missing (required)"),
        (
            HEAD.replace("max_temp_c = -18", 'max_temp_c = "cold"'),
            "attributes.max_temp_c: expected a number, got 'cold'",
        ),
        (HEAD + '[schedule]\ntimezone = "Mars/Olympus"\n', "unknown timezone 'Mars/Olympus'"),
        (
            HEAD + '[schedule]\nnight_start = "10pm"\n',
            "schedule.night_start: expected a time of day as HH:MM",
        ),
        ('heartbeat_s = "attr:hb"\n' + HEAD, "heartbeat_s: attr:hb has no default"),
        ("events = [\n", "not valid TOML"),
        ('events = ["door_open", "door_open"]\n', "events: expected each event once, got door_open more"),
        (HEAD.replace("temperature = {", "and = {"), "metrics.and: expected a metric name, got 'and'"),
        ("rules = [1]\n" + HEAD, "rules[0]: expected a table, got 1"),
        (
            HEAD + "[schedule]\nzone = 'UTC'\n",
            "schedule: unknown keys ['zone'] for a schedule; expected some",
        ),
    ],
)
def test_profile_errors_name_the_file(head: str, message: str):
    found = error("", head)
    assert found.startswith("profiles/freezer.toml: ") and "rule #" not in found
    assert message in found


def test_a_bad_file_in_a_profile_folder_fails_the_whole_load(tmp_path: Path):
    (tmp_path / "freezer.toml").write_text(HEAD + GOOD, encoding="utf-8")
    (tmp_path / "boiler.toml").write_text(GOOD, encoding="utf-8")  # no metrics declared
    with pytest.raises(
        ProfileError, match=r"boiler.toml: rule #1 \(COLD_CHAIN_FREEZER_WARM\): when: unknown metric"
    ):
        load_profiles(tmp_path)


def test_a_rulebook_from_a_folder_judges_with_it(tmp_path: Path):
    (tmp_path / "freezer.toml").write_text(HEAD + GOOD, encoding="utf-8")
    book = Rulebook(load_profiles(tmp_path))
    assert set(book.profiles) == {"freezer"} and book.program("boiler", {}) is None
    program = book.program("freezer", {"max_temp_c": -30})
    assert program is not None and program.conds[0].when({"temperature": -25.0})
    assert book.program("freezer", {"max_temp_c": -30}) is program  # compiled once per ratings


# --- the condition language --------------------------------------------------------------------------


def test_conditions_compile_with_precedence_and_parentheses():
    def judge(condition: str, **values: float) -> bool:
        return compile_condition(parse_condition(condition), lambda limit: limit.resolve({}, {}))(values)

    assert judge("a > 1 and b < 2 or c = 1", a=0, b=5, c=1)
    assert not judge("a > 1 and (b < 2 or c = 1)", a=0, b=5, c=1)
    assert judge("a >= 1 and a <= 1 and a == 1 and b != 1", a=1, b=0)
    assert judge("a < -0.3", a=-0.31) and not judge("a < -0.3", a=-0.3)


def test_limits_resolve_attributes_defaults_multipliers_and_offsets():
    limit = parse_limit("attr:rated_speed_mps[1.75] * 1.15")
    assert limit == Limit(attr="rated_speed_mps", default=1.75, mul=1.15)
    assert limit.resolve({}, {}) == pytest.approx(2.0125)
    assert limit.resolve({"rated_speed_mps": 2}, {}) == pytest.approx(2.3)
    assert parse_limit("attr:top_m + 0.3").resolve({}, {"top_m": 60}) == pytest.approx(60.3)
    assert parse_limit("attr:max_temp_c - 0.5").resolve({"max_temp_c": -25}, {}) == -25.5
    assert parse_limit(600).resolve({}, {}) == 600
    # A non-number attribute is ignored: the inline default, then the profile's.
    assert parse_limit("attr:x[3]").resolve({"x": "high"}, {"x": 9}) == 3
    assert parse_limit("attr:x").resolve({"x": True}, {"x": 9}) == 9


def test_conditions_read_back_for_people():
    expr = parse_condition("temperature < attr:min_temp_c or temperature > attr:max_temp_c * 1.1")
    assert text(expr) == "temperature < attr:min_temp_c or temperature > attr:max_temp_c * 1.1"
    assert text(expr, lambda limit: limit.resolve({}, {"min_temp_c": 0, "max_temp_c": 10})) == (
        "temperature < 0 or temperature > 11"
    )


@pytest.mark.parametrize(
    "bad",
    [
        "", "temperature", "temperature >", "temperature > 5 and", "(temperature > 5", "temperature > 5)",
        "temperature ~ 5", "and > 5", "temperature > attr:x[", "temperature > 5; import os",
        "__import__('os') > 1",
    ],
)  # fmt: skip
def test_bad_conditions_are_refused(bad: str):
    with pytest.raises(ExpressionError):
        parse_condition(bad)
