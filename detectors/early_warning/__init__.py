"""Early warning: a small learned model that raises `DEVICE_RISK_WARNING` before a limit rule fires.

The rules of `docs/devices.md` fire once a limit has been crossed (a freezer above -18 °C for 15
minutes, a boiler over its rating for 10 s). The early-warning model (`models/early-warning.onnx`,
trained on simulated devices by `python -m models.early_warning.train`; see its model card
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

Modules: `channels` (the watched metrics, their limits, the one-minute time base), `features`
(`FEATURES` and `window_features`, the one feature function), `track` (`DeviceTrack`: a device's
bounded recent window and its rows), `policy` (`Policy` and `WarnState`: risk to warning, shared
with the training script's evaluation), `manifest` (reading and checking `early-warning.toml`),
`scorer` (`EarlyWarning`: model, per-device state, violations). The training script
(`models/early_warning/`) builds its rows with the same `DeviceTrack`.
"""

from detectors.early_warning.channels import CHANNELS, MIN_POINTS, WINDOW_MIN
from detectors.early_warning.features import FEATURES, window_features
from detectors.early_warning.manifest import default_manifest, load_manifest
from detectors.early_warning.policy import Policy, WarnState
from detectors.early_warning.scorer import CODE, EarlyWarning
from detectors.early_warning.track import DeviceTrack

__all__ = [
    "CHANNELS",
    "CODE",
    "FEATURES",
    "MIN_POINTS",
    "WINDOW_MIN",
    "DeviceTrack",
    "EarlyWarning",
    "Policy",
    "WarnState",
    "default_manifest",
    "load_manifest",
    "window_features",
]
