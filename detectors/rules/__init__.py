"""The telemetry rule engine and the device profiles it runs.

Each equipment type is one data file, `detectors/profiles/<type>.toml`, implementing its part of
`docs/devices.md`; a device's registered `profile` names the file, its registered `attributes`
carry its own ratings. The format:

    description = "Freezer"
    heartbeat_s = "attr:heartbeat_s[300]"     # no message for this long → DEVICE_OFFLINE (0: off)
    events = ["door_open", "door_closed"]     # the events the device sends

    [metrics]                                 # unit and physically possible range; a value
    temperature = { unit = "°C", min = -60, max = 60 }   # outside → SENSOR_OUT_OF_RANGE

    [attributes]                              # defaults of the attributes the limits read
    max_temp_c = -18

    [schedule]                                # site-local night (devices override with the
    timezone = "Asia/Shanghai"                # attributes timezone, night_start, night_end)
    night_start = "22:00"
    night_end = "06:00"

    [[rules]]
    code = "COLD_CHAIN_FREEZER_WARM"          # a code of vigil/data/violations.toml
    kind = "threshold"
    when = "temperature > attr:max_temp_c"    # see detectors.rules.expr for the language
    for_s = "attr:duration_s[900]"            # must hold this long (0: at once)
    clear = "temperature < attr:max_temp_c - 0.5"   # hysteresis; default: `when` no longer holds
    # severity = "major"                      # default: the catalogue's
    # night_severity / night_for_s            # at night: this severity, after this long
    # escalate_after_s / escalate_to          # upgrade while still active

Rule kinds:
- `threshold`: a condition over the latest value of each metric (`and`, `or`, parentheses, limits
  `attr:NAME[default] * k + c`) that must hold for `for_s` before it is raised, and clears when
  `clear` holds. `clear` is the hysteresis: between the two (the band) nothing changes, so a
  sensor flapping around the limit neither clears a raised alert nor restarts the count of a
  pending one; a pending episode ends when `clear` holds, or after `for_s` spent in the band.
  Without `clear` there is no band: the episode ends as soon as `when` stops holding.
- `event_count`: `count` events named `event` within `window_s`; clears after `quiet_s`
  (default `window_s`) without one.
- `event`: raised by `event`; clears `quiet_s` after the last one and/or on `clear_event`.
- `state_timer`: `start_event` without `stop_event` for `for_s`; clears on `stop_event`.
- `date_compare`: `event` whose `data[field]` date is before (`op = "<"`) the event's site-local
  date; one violation per `data[key]` and day, never cleared (a point violation).

Every device of a known profile also gets DEVICE_OFFLINE (status offline, the MQTT last will, or
no message for heartbeat_s) and SENSOR_OUT_OF_RANGE. A device whose profile has no file gets
nothing at all, not even those: the engine knows neither its metrics nor its heartbeat.
"""

from __future__ import annotations

from detectors.rules.engine import DeviceState, EngineStats, Program, Rulebook, RuleEngine
from detectors.rules.expr import ExpressionError
from detectors.rules.profiles import Profile, ProfileError, load_profile, load_profile_text, load_profiles

__all__ = [
    "DeviceState",
    "EngineStats",
    "ExpressionError",
    "Profile",
    "ProfileError",
    "Program",
    "RuleEngine",
    "Rulebook",
    "load_profile",
    "load_profile_text",
    "load_profiles",
]
