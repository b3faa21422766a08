"""The model's manifest (`models/early-warning.toml`), checked against this package before use.

The manifest names the ONNX file and its input and output, and carries the operating point (the
`Policy`) chosen when the model was trained. A model trained on other features, other channels or
another window would be fed rows it was not made for, so such a manifest is refused outright.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from detectors.early_warning.channels import CHANNELS, WINDOW_MIN
from detectors.early_warning.features import FEATURES
from detectors.early_warning.policy import Policy
from vigil.errors import ConfigurationError


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
            "(retrain with `python -m models.early_warning.train`)"
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
