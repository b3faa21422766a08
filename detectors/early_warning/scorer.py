"""The scorer: device messages in, `DEVICE_RISK_WARNING` violations out.

`EarlyWarning` feeds each device's messages through its `DeviceTrack`, runs the model on the rows
and turns the device's risk into warnings under the manifest's `Policy`.

`warnings` takes every device message (telemetry, events, status) with the registry's `Device`
(or None: the profile file's default limits), keeps what it needs and returns the violations to
send, usually none. It is cheap: a device is scored at most once per minute of event time (at its
first reading of a new minute), in one batch of its watched metrics, on one CPU thread; other
readings cost a dictionary update. Violation ids are deterministic, `violation_id("device", device,
"DEVICE_RISK_WARNING", window_start)` with window_start the event time of the first of the scores
that raised the warning, so the detector's replay of a partition re-emits the same warning, which
the alert store absorbs. State is per device, not per partition: a revoked partition's devices may
be dropped with `forget(device_id)` (or all with `forget()`), and are rebuilt by the replay.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from detectors.early_warning.channels import CHANNELS, PROFILES, Channel, profile_defaults, profile_units
from detectors.early_warning.features import FEATURES
from detectors.early_warning.manifest import load_manifest
from detectors.early_warning.policy import Policy, WarnState
from detectors.early_warning.track import DeviceTrack
from vigil.catalogue import violation_type
from vigil.errors import ConfigurationError
from vigil.events import DeviceEvent, DeviceMessage, Telemetry, Violation, violation_id
from vigil.registry import Device

CODE: Final = "DEVICE_RISK_WARNING"


@dataclass(slots=True)
class _Device:
    track: DeviceTrack
    warn: WarnState


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
        self._units = profile_units()
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
        kind = type(message)
        if kind is not Telemetry:
            if kind is DeviceEvent:
                assert isinstance(message, DeviceEvent)
                self.event(device, message.ts, message.event)
            return []  # an event is kept for the features; a status changes nothing
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
            # The figures of the summary people read (vigil.summaries).
            "params": {
                "variant": channel.direction,
                "metric": channel.metric,
                "value": value,
                "limit": limit,
                "unit": self._units.get(channel.profile, {}).get(channel.metric, ""),
                "rule": channel.rule,
                "horizon_s": m.horizon_min * 60,
                "risk": round(risk, 4),
            },
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
