"""Early warning: a small learned model that raises `DEVICE_RISK_WARNING` before a limit rule fires.

The rules of `docs/devices.md` fire once a limit has been crossed (a freezer above -18 °C for 15
minutes, a boiler over its rating for 10 s). The early-warning model (`models/early-warning.onnx`,
trained on simulated devices by `python -m models.train_early_warning`; see its model card
`models/early-warning.md`) looks at the last 30 minutes of each watched metric and estimates the
probability that the metric's rule fires within the next 30 minutes. A device whose risk reaches
the manifest's threshold gets one `DEVICE_RISK_WARNING` (severity info), cleared when the risk has
stayed low for a while.

Watched (the `CHANNELS`, one model row each): the temperature of a freezer and of a chiller
(upper limit), a boiler's pressure, water level and temperature, a pressure vessel's pressure.

Wiring it into the telemetry detector (`detectors/telemetry.py`) is three lines:

    from detectors.early_warning import EarlyWarning            # the import
    self._early = EarlyWarning()                                 # __init__: loads and warms up
    await self._send(self._early.warnings(message, device), sends)   # handle(), after engine.feed

`warnings` takes every device message (telemetry, events, status) with the registry's `Device`
(or None: the profile file's default limits), keeps what it needs and returns the violations to
send, usually none. It is cheap: a device is scored at most once per minute of event time (at its
first reading of a new minute), in one batch of its watched metrics, on one CPU thread; other
readings cost a dictionary update. Violation ids are deterministic, `violation_id("device", device,
"DEVICE_RISK_WARNING", window_start)` with window_start the event time of the first of the scores
that raised the warning, so the detector's replay of a partition re-emits the same warning, which
the alert store absorbs. State is per device, not per partition: a revoked partition's devices may
be dropped with `forget(device_id)` (or all with `forget()`), and are rebuilt by the replay.

Features. `DeviceTrack` keeps, per device, one reading per minute of each watched metric (the
latest of the minute) for the last 30 minutes, in bounded ring buffers, and the door events of a
cold room; `DeviceTrack.features` turns them into the model's rows (`FEATURES`). The training
script builds its rows with this same class, from the same simulated messages, so training and
runtime features cannot drift apart.
"""

from __future__ import annotations

import math
import tomllib
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from vigil.catalogue import violation_type
from vigil.errors import ConfigurationError
from vigil.events import DeviceEvent, DeviceMessage, DeviceStatus, Telemetry, Violation, violation_id
from vigil.registry import Device

CODE: Final = "DEVICE_RISK_WARNING"

WINDOW_MIN: Final = 30  # minutes of history a row looks at
MIN_POINTS: Final = 10  # minutes with a reading needed before a metric is scored
MINUTE_MS: Final = 60_000
# Caps keep the features in a bounded range whatever a device sends.
ETA_CAP_MIN: Final = 240.0
DOOR_CAP_MIN: Final = 60.0
MARGIN_CAP: Final = 10.0
RATE_CAP: Final = 5.0
RUN_TOLERANCE: Final = 0.1  # margin units: noise a steady approach may show (0.4 °C in a freezer)


@dataclass(frozen=True, slots=True)
class Channel:
    """One watched metric of a profile and the limit rule it forecasts.

    The margin is the distance to the limit on the safe side, divided by `scale` (times the limit
    when `relative`): about 1 in normal operation, 0 at the limit, negative beyond it."""

    name: str
    profile: str
    metric: str
    rule: str  # the catalogue code of the rule the label is about
    limit_attr: str
    limit_default: float  # docs/devices.md; the profile file's default wins when there is one
    direction: Literal["above", "below"]  # the rule fires above (below) the limit
    scale: float
    relative: bool
    valid: tuple[float, float]  # the physically possible range: other readings are ignored
    hold_attr: str | None  # the attribute of the rule's hold time, if it has one
    hold_default_s: float

    def limit(self, attributes: Mapping[str, Any], defaults: Mapping[str, float]) -> float:
        return _number(attributes.get(self.limit_attr), defaults.get(self.limit_attr, self.limit_default))

    def hold_s(self, attributes: Mapping[str, Any], defaults: Mapping[str, float]) -> float:
        if self.hold_attr is None:
            return self.hold_default_s
        return _number(attributes.get(self.hold_attr), defaults.get(self.hold_attr, self.hold_default_s))

    def span(self, limit: float) -> float:
        return max(abs(limit) * self.scale, 1e-6) if self.relative else self.scale


CHANNELS: Final[tuple[Channel, ...]] = (
    Channel("freezer.temperature", "freezer", "temperature", "COLD_CHAIN_FREEZER_WARM",
            "max_temp_c", -18.0, "above", 4.0, False, (-60.0, 60.0), "duration_s", 900.0),
    Channel("chiller.temperature", "chiller", "temperature", "COLD_CHAIN_CHILLER_OUT_OF_RANGE",
            "max_temp_c", 8.0, "above", 4.5, False, (-60.0, 60.0), "duration_s", 900.0),
    Channel("boiler.pressure", "boiler", "pressure_mpa", "BOILER_OVER_PRESSURE",
            "rated_pressure_mpa", 1.25, "above", 0.2, True, (0.0, 10.0), None, 10.0),
    Channel("boiler.water_level", "boiler", "water_level_mm", "BOILER_LOW_WATER",
            "min_water_level_mm", 50.0, "below", 70.0, False, (-500.0, 1000.0), None, 10.0),
    Channel("boiler.temperature", "boiler", "temperature_c", "BOILER_OVER_TEMPERATURE",
            "max_temperature_c", 194.0, "above", 10.0, False, (0.0, 400.0), None, 30.0),
    Channel("pressure_vessel.pressure", "pressure_vessel", "pressure_mpa", "PRESSURE_VESSEL_OVER_PRESSURE",
            "rated_pressure_mpa", 1.6, "above", 0.375, True, (0.0, 40.0), None, 10.0),
)  # fmt: skip
PROFILES: Final = tuple(dict.fromkeys(c.profile for c in CHANNELS))
DOOR_PROFILES: Final = frozenset({"freezer", "chiller"})

# The model's input columns, in order, and what each means (the model card lists them).
FEATURE_HELP: Final[dict[str, str]] = {
    "margin": "normalised distance to the limit at the latest reading (1 normal, 0 at the limit)",
    "margin_mean5": "its mean over the last 5 minutes",
    "margin_min30": "its lowest over the window",
    "margin_max30": "its highest over the window",
    "approach5": "margin lost per minute towards the limit (least-squares slope), last 5 minutes",
    "approach15": "the same over the last 15 minutes",
    "approach30": "the same over the whole window",
    "curvature30": "acceleration towards the limit (quadratic fit over the window), per minute²",
    "resid30": "spread about the window's straight line (a thermostat's saw-tooth, noise)",
    "eta5_min": f"minutes to the limit at approach5 (capped at {ETA_CAP_MIN:g}; 0 beyond it)",
    "eta15_min": "the same at approach15",
    "rising_min": "minutes since the window's safest reading",
    "run_min": "minutes the metric has been moving steadily towards the limit (noise tolerated)",
    "beyond_min": "minutes the metric has been beyond the limit (the latest run)",
    "hold_min": "the rule's hold time in minutes (a cold room's attr:duration_s; 10 s for a boiler)",
    "hold_left_min": "the hold time minus beyond_min, at least 0",
    "door_open_min": "cold rooms: minutes the door has been open now (0 when closed)",
    "since_door_min": f"minutes since the last door event (capped at {DOOR_CAP_MIN:g})",
    "door_opens30": "door openings in the window",
    "coverage": "share of the window's minutes with a reading",
    **{f"is_{c.name.replace('.', '_')}": f"1 for a row about the {c.profile}'s {c.metric}" for c in CHANNELS},
}
FEATURES: Final[tuple[str, ...]] = tuple(FEATURE_HELP)


def _number(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return float(default)


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2:
        return 0.0
    dx = x - x.mean()
    sxx = float(dx @ dx)
    return float(dx @ (y - y.mean())) / sxx if sxx > 0 else 0.0


def _eta(margin: float, approach: float) -> float:
    if margin <= 0:
        return 0.0
    if approach <= 1e-9:
        return ETA_CAP_MIN
    return min(ETA_CAP_MIN, margin / approach)


def _run(x: np.ndarray, y: np.ndarray) -> float:
    """Minutes of the latest steady approach: back from the latest reading for as long as every
    earlier reading was at least as far from the limit as the later ones, within `RUN_TOLERANCE`."""
    values = y.tolist()
    later_max = values[-1]
    start = len(values) - 1
    for i in range(len(values) - 2, -1, -1):
        if values[i] < later_max - RUN_TOLERANCE:
            break  # nearer the limit than a later reading: the approach began after it
        later_max = max(later_max, values[i])
        start = i
    return float(x[-1] - x[start])


def _clip(x: float, cap: float) -> float:
    return max(-cap, min(cap, x))


def window_features(
    minutes: np.ndarray,
    margins: np.ndarray,
    *,
    channel: int,
    hold_min: float,
    door_open_min: float,
    since_door_min: float,
    door_opens: int,
) -> np.ndarray:
    """One model row: `minutes` (<= 0, the latest last) and `margins` of one metric's window.

    The one feature function: the runtime and the training script both reach it through
    `DeviceTrack.features`."""
    x, y = minutes, margins
    last = float(y[-1])
    recent5, recent15 = x > -5, x > -15
    approach5 = -_slope(x[recent5], y[recent5])
    approach15 = -_slope(x[recent15], y[recent15])
    approach30 = -_slope(x, y)
    curvature = 0.0
    if x.size >= 4 and float(x[-1] - x[0]) >= 3:
        a = np.vander(x, 3)
        coef, *_ = np.linalg.lstsq(a, y, rcond=None)
        curvature = -2.0 * float(coef[0])
    line = y - (y.mean() + (-approach30) * (x - x.mean()))
    resid = float(np.sqrt(np.mean(line * line)))
    beyond = 0.0
    if last < 0:
        safe = np.flatnonzero(y >= 0)
        first = int(safe[-1]) + 1 if safe.size else 0
        beyond = float(x[-1] - x[first]) + 1.0
    row = [
        _clip(last, MARGIN_CAP),
        _clip(float(y[recent5].mean()), MARGIN_CAP),
        _clip(float(y.min()), MARGIN_CAP),
        _clip(float(y.max()), MARGIN_CAP),
        _clip(approach5, RATE_CAP),
        _clip(approach15, RATE_CAP),
        _clip(approach30, RATE_CAP),
        _clip(curvature, RATE_CAP),
        min(resid, MARGIN_CAP),
        _eta(last, approach5),
        _eta(last, approach15),
        -float(x[int(np.argmax(y))]),
        _run(x, y),
        beyond,
        hold_min,
        max(0.0, hold_min - beyond),
        min(door_open_min, DOOR_CAP_MIN),
        min(since_door_min, DOOR_CAP_MIN),
        float(door_opens),
        x.size / WINDOW_MIN,
    ]
    onehot = [0.0] * len(CHANNELS)
    onehot[channel] = 1.0
    return np.asarray(row + onehot, dtype=np.float32)


class DeviceTrack:
    """One device's recent past: per watched metric a ring buffer of (minute, latest value) for the
    last `WINDOW_MIN` minutes, and the state of a cold room's door. Bounded whatever comes in."""

    __slots__ = ("_door_opens", "_door_since", "_last_door", "channels", "indices", "last_ts", "points")

    def __init__(self, profile: str) -> None:
        self.indices = tuple(i for i, c in enumerate(CHANNELS) if c.profile == profile)
        self.channels = tuple(CHANNELS[i] for i in self.indices)
        self.points: dict[str, deque[tuple[int, float]]] = {
            c.metric: deque(maxlen=WINDOW_MIN) for c in self.channels
        }
        self.last_ts: int | None = None
        self._door_since: int | None = None
        self._last_door: int | None = None
        self._door_opens: deque[int] = deque(maxlen=WINDOW_MIN)

    def add(self, ts: int, metrics: Mapping[str, float]) -> bool:
        """Keep a reading; True when it is the first of a new minute (the moment to score).
        A reading older than the newest is late and ignored; impossible values are left out."""
        if self.last_ts is not None and ts < self.last_ts:
            return False
        new_minute = self.last_ts is None or ts // MINUTE_MS != self.last_ts // MINUTE_MS
        self.last_ts = ts
        minute = ts // MINUTE_MS
        for c in self.channels:
            value = metrics.get(c.metric)
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if not (c.valid[0] <= value <= c.valid[1]):  # SENSOR_OUT_OF_RANGE's business
                continue
            buf = self.points[c.metric]
            if buf and buf[-1][0] == minute:
                buf[-1] = (minute, float(value))
            else:
                buf.append((minute, float(value)))
        return new_minute

    def event(self, ts: int, name: str) -> None:
        if name == "door_open":
            if self._door_since is None:
                self._door_since = ts
                self._door_opens.append(ts)
            self._last_door = ts
        elif name == "door_closed":
            self._door_since = None
            self._last_door = ts

    def features(
        self, ts: int, attributes: Mapping[str, Any], defaults: Mapping[str, Mapping[str, float]]
    ) -> tuple[list[int], np.ndarray] | None:
        """The model rows of this device at `ts` (its latest reading): the indices into `CHANNELS`
        of the metrics with enough history, and their rows (k, len(FEATURES)); None if none."""
        now = ts // MINUTE_MS
        door_open = (ts - self._door_since) / MINUTE_MS if self._door_since is not None else 0.0
        since_door = (ts - self._last_door) / MINUTE_MS if self._last_door is not None else DOOR_CAP_MIN
        opens = sum(1 for t in self._door_opens if ts - t < WINDOW_MIN * MINUTE_MS)
        used: list[int] = []
        rows: list[np.ndarray] = []
        for index, c in zip(self.indices, self.channels, strict=True):
            buf = self.points[c.metric]
            if not buf or buf[-1][0] != now:
                continue  # no reading of this metric in the current minute
            window = [(m, v) for m, v in buf if m > now - WINDOW_MIN]
            if len(window) < MIN_POINTS:
                continue
            own = defaults.get(c.profile, {})
            limit = c.limit(attributes, own)
            span = c.span(limit)
            sign = 1.0 if c.direction == "above" else -1.0
            minutes = np.array([m - now for m, _ in window], dtype=np.float64)
            margins = np.array([sign * (limit - v) / span for _, v in window], dtype=np.float64)
            rows.append(
                window_features(
                    minutes,
                    margins,
                    channel=index,
                    hold_min=c.hold_s(attributes, own) / 60,
                    door_open_min=max(0.0, door_open),
                    since_door_min=max(0.0, since_door),
                    door_opens=opens,
                )
            )
            used.append(index)
        if not rows:
            return None
        return used, np.stack(rows)


# --- the warning state machine, shared with the training script's evaluation -------------------------


@dataclass(frozen=True, slots=True)
class Policy:
    """When a device's risk becomes a warning: `confirm_min` consecutive scores at or above
    `threshold` raise it (unless one was cleared less than `cooldown_min` ago), `clear_after_min`
    consecutive scores under `clear_below` clear it. One drift, one warning."""

    threshold: float
    clear_below: float
    confirm_min: int = 1
    clear_after_min: int = 10
    cooldown_min: int = 60


@dataclass(slots=True)
class WarnState:
    """One device's warning state under a `Policy`."""

    active_since: int | None = None  # window_start of the active warning
    high_since: int | None = None  # the first of the latest run of high scores
    high_scores: int = 0
    low_scores: int = 0
    cleared_at: int | None = None

    def step(self, ts: int, risk: float, policy: Policy) -> Literal["raise", "clear"] | None:
        if self.active_since is None:
            if risk < policy.threshold:
                self.high_since, self.high_scores = None, 0
                return None
            if self.high_since is None:
                self.high_since = ts
            self.high_scores += 1
            cooled = self.cleared_at is None or ts - self.cleared_at >= policy.cooldown_min * MINUTE_MS
            if self.high_scores >= policy.confirm_min and cooled:
                self.active_since, self.low_scores = self.high_since, 0
                self.high_since, self.high_scores = None, 0
                return "raise"
            return None
        if risk < policy.clear_below:
            self.low_scores += 1
            if self.low_scores >= policy.clear_after_min:
                self.active_since, self.cleared_at = None, ts
                return "clear"
        else:
            self.low_scores = 0
        return None


# --- the manifest ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Manifest:
    path: Path
    name: str
    file: Path
    input: str
    output: str
    output_column: int
    features: tuple[str, ...]
    channels: tuple[str, ...]
    profiles: tuple[str, ...]
    policy: Policy
    horizon_min: int
    window_min: int


def default_manifest() -> Path:
    """The bundled manifest: `early-warning.toml` of the `models` package, wherever it is installed."""
    return Path(str(resources.files("models"))) / "early-warning.toml"


def load_manifest(path: str | Path | None = None) -> Manifest:
    """Read the manifest (default: the bundled one) and check it against this module: a model
    trained on other features, or other channels, must not be fed rows it was not made for."""
    source = Path(path if path is not None else default_manifest()).expanduser().resolve()
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"early-warning manifest {source} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"early-warning manifest {source}: cannot read it: {exc}") from None

    def need(key: str, kind: type | tuple[type, ...]) -> Any:
        value = raw.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigurationError(f"early-warning manifest {source}: {key} is missing or malformed")
        return value

    features = tuple(need("features", list))
    if features != FEATURES:
        raise ConfigurationError(
            f"early-warning manifest {source}: its features differ from detectors.early_warning.FEATURES "
            "(retrain with `python -m models.train_early_warning`)"
        )
    channels = tuple(str(c.get("name")) for c in need("channels", list) if isinstance(c, dict))
    if channels != tuple(c.name for c in CHANNELS):
        raise ConfigurationError(
            f"early-warning manifest {source}: its channels {channels} differ from "
            "detectors.early_warning.CHANNELS (retrain)"
        )
    shape = need("input_shape", list)
    if len(shape) != 2 or shape[1] != len(FEATURES):
        raise ConfigurationError(f"early-warning manifest {source}: input_shape must be [N, {len(FEATURES)}]")
    if need("window_min", int) != WINDOW_MIN:
        raise ConfigurationError(f"early-warning manifest {source}: window_min must be {WINDOW_MIN}")
    policy = Policy(
        threshold=float(need("threshold", (int, float))),
        clear_below=float(need("clear_below", (int, float))),
        confirm_min=int(need("confirm_min", int)),
        clear_after_min=int(need("clear_after_min", int)),
        cooldown_min=int(need("cooldown_min", int)),
    )
    if not 0 < policy.clear_below <= policy.threshold < 1:
        raise ConfigurationError(
            f"early-warning manifest {source}: want 0 < clear_below <= threshold < 1, "
            f"got {policy.clear_below} and {policy.threshold}"
        )
    if min(policy.confirm_min, policy.clear_after_min) < 1 or policy.cooldown_min < 0:
        raise ConfigurationError(
            f"early-warning manifest {source}: confirm_min and clear_after_min must be at least 1, "
            "cooldown_min at least 0"
        )
    return Manifest(
        path=source,
        name=str(need("name", str)),
        file=source.parent / str(need("file", str)),
        input=str(need("input", str)),
        output=str(need("output", str)),
        output_column=int(need("output_column", int)),
        features=features,
        channels=channels,
        profiles=tuple(need("profiles", list)),
        policy=policy,
        horizon_min=int(need("horizon_min", int)),
        window_min=WINDOW_MIN,
    )


def profile_defaults() -> dict[str, dict[str, float]]:
    """The default attributes of each profile file (`detectors/profiles/`), as the rules use them."""
    from detectors.rules import load_profiles

    return {name: dict(p.attributes) for name, p in load_profiles().items() if name in PROFILES}


@dataclass(slots=True)
class _Device:
    track: DeviceTrack
    warn: WarnState


# --- the scorer ------------------------------------------------------------------------------------


class EarlyWarning:
    """Loads the manifest and its ONNX model (onnxruntime, CPU, one thread), keeps each device's
    recent window and warning state, scores and warns. Not thread-safe: one per detector loop."""

    def __init__(
        self,
        manifest: str | Path | None = None,
        *,
        defaults: Mapping[str, Mapping[str, float]] | None = None,
        max_devices: int = 200_000,
    ) -> None:
        import onnxruntime as ort

        self.manifest = load_manifest(manifest)
        self.defaults = dict(defaults) if defaults is not None else profile_defaults()
        self.max_devices = max_devices
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._session = ort.InferenceSession(
                str(self.manifest.file), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ConfigurationError(
                f"early-warning model {self.manifest.file}: cannot load it: {exc}"
            ) from None
        inputs = {i.name: i for i in self._session.get_inputs()}
        graph_input = inputs.get(self.manifest.input)
        if graph_input is None or len(inputs) != 1:
            raise ConfigurationError(
                f"early-warning model {self.manifest.file}: expected one input {self.manifest.input!r}, "
                f"found {sorted(inputs)}"
            )
        width = graph_input.shape[1] if len(graph_input.shape) == 2 else None
        if width != len(FEATURES):
            raise ConfigurationError(
                f"early-warning model {self.manifest.file}: input shape {graph_input.shape}, "
                f"expected [N, {len(FEATURES)}]"
            )
        if self.manifest.output not in {o.name for o in self._session.get_outputs()}:
            raise ConfigurationError(
                f"early-warning model {self.manifest.file}: no output {self.manifest.output!r}"
            )
        self._devices: OrderedDict[str, _Device] = OrderedDict()
        self._kind = violation_type(CODE)
        self.scored = 0  # model runs (one per device and minute at most)
        # Warm-up: the first runs of a session allocate; do it now, not on the first reading.
        for n in (1, 2, 3):
            self.predict(np.zeros((n, len(FEATURES)), dtype=np.float32))

    @property
    def policy(self) -> Policy:
        return self.manifest.policy

    def __len__(self) -> int:
        return len(self._devices)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """The model's probability for each row (N, len(FEATURES)) float32."""
        (out,) = self._session.run([self.manifest.output], {self.manifest.input: rows})
        return np.asarray(out, dtype=np.float64)[:, self.manifest.output_column]

    def _device(self, device_id: str, profile: str) -> _Device | None:
        dev = self._devices.get(device_id)
        if dev is not None:
            if dev.track.channels and dev.track.channels[0].profile == profile:
                self._devices.move_to_end(device_id)
                return dev
            del self._devices[device_id]  # re-registered as another type of device
        if profile not in PROFILES:
            return None
        dev = self._devices[device_id] = _Device(DeviceTrack(profile), WarnState())
        while len(self._devices) > self.max_devices:
            self._devices.popitem(last=False)  # the device heard from least recently
        return dev

    def track(self, device_id: str) -> DeviceTrack | None:
        dev = self._devices.get(device_id)
        return dev.track if dev is not None else None

    def forget(self, device_id: str | None = None) -> None:
        """Drop one device's state, or every device's (a revoked partition)."""
        if device_id is None:
            self._devices.clear()
        else:
            self._devices.pop(device_id, None)

    def event(self, device: Device, ts: int, name: str) -> None:
        dev = self._device(device.device_id, device.profile)
        if dev is not None:
            dev.track.event(ts, name)

    def score(self, device: Device, ts: int, metrics: Mapping[str, float]) -> float | None:
        """Keep a reading; at the first reading of a new minute, the device's risk (the highest of
        its watched metrics'), else None (also while there is too little history, or for a device
        type the model does not watch)."""
        result = self._score(device, ts, metrics)
        return result[0] if result is not None else None

    def _score(
        self, device: Device, ts: int, metrics: Mapping[str, float]
    ) -> tuple[float, int, np.ndarray, np.ndarray] | None:
        dev = self._device(device.device_id, device.profile)
        if dev is None or not dev.track.add(ts, metrics):
            return None
        found = dev.track.features(ts, device.attributes, self.defaults)
        if found is None:
            return None
        used, rows = found
        risks = self.predict(rows)
        self.scored += 1
        best = int(np.argmax(risks))
        return float(risks[best]), used[best], rows[best], risks

    def warnings(self, message: DeviceMessage, device: Device | None = None) -> list[Violation]:
        """Feed one device message; the `DEVICE_RISK_WARNING` violations it raises or clears."""
        if device is None or device.profile != message.profile:
            attributes = device.attributes if device is not None else {}
            device = Device(
                message.device_id, message.enterprise_id, message.site_id, message.profile, attributes
            )
        if isinstance(message, DeviceEvent):
            self.event(device, message.ts, message.event)
            return []
        if isinstance(message, DeviceStatus):
            return []
        assert isinstance(message, Telemetry)
        scored = self._score(device, message.ts, message.metrics)
        if scored is None:
            return []
        risk, index, row, _ = scored
        dev = self._devices[device.device_id]
        since = dev.warn.active_since
        change = dev.warn.step(message.ts, risk, self.policy)
        if change is None:
            return []
        window_start = dev.warn.active_since if change == "raise" else since
        assert window_start is not None
        return [self._violation(device, message, change, window_start, risk, CHANNELS[index], row)]

    def _violation(
        self,
        device: Device,
        message: Telemetry,
        change: Literal["raise", "clear"],
        window_start: int,
        risk: float,
        channel: Channel,
        row: np.ndarray,
    ) -> Violation:
        m = self.manifest
        own = self.defaults.get(channel.profile, {})
        limit = channel.limit(device.attributes, own)
        value = message.metrics.get(channel.metric)
        shown = f"{value:g}" if isinstance(value, int | float) else "?"
        side = ">" if channel.direction == "above" else "<"
        if change == "raise":
            summary = (
                f"{self._kind.name_en}: {channel.metric} {shown} heading for {side} {limit:g}; "
                f"{channel.rule} likely within {m.horizon_min} min (risk {risk:.2f})"
            )
        else:
            summary = f"{self._kind.name_en} ended: risk {risk:.2f} for {m.policy.clear_after_min} min"
        evidence: dict[str, Any] = {
            "rule": "early_warning",
            "model": m.name,
            "risk": round(risk, 4),
            "threshold": m.policy.threshold,
            "horizon_min": m.horizon_min,
            "channel": channel.name,
            "metric": channel.metric,
            "value": value,
            "limit": limit,
            "forecast_rule": channel.rule,
            "features": {
                name: round(float(x), 4)
                for name, x in zip(FEATURES, row, strict=True)
                if not name.startswith("is_")
            },
        }
        return Violation(
            violation_id=violation_id("device", device.device_id, CODE, window_start),
            code=CODE,
            state="active" if change == "raise" else "cleared",
            enterprise_id=device.enterprise_id,
            site_id=device.site_id,
            source_kind="device",
            source_id=device.device_id,
            window_start=window_start,
            detected_at=message.ts,
            severity=self._kind.severity,
            detector=f"early-warning:{m.name}",
            summary=f"{summary} on {device.device_id}",
            evidence=evidence,
        )
