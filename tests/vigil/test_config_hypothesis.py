"""Property-based tests of the configuration boundaries: camera sources and zones (vigil/cameras.py),
device profiles (TOML), scenario files (YAML) and model manifests (TOML). Each shipped file is
damaged the way hand edits damage files — truncated, a value swapped for another type, a key
dropped — and every result must be a valid object or the project's own ConfigurationError (or
ScenarioError) saying what is wrong; shipped files themselves must still load."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from detectors.rules.profiles import load_profile_text
from detectors.vision.manifest import load_manifest
from simulators.scenario import ScenarioError, bundled, parse
from tests.hostile import BOUNDED, json_safe
from vigil.cameras import PUSH_SOURCE, check_source, parse_zones, validate_camera
from vigil.errors import ConfigurationError

PROFILES = sorted((Path(__file__).parents[2] / "detectors" / "profiles").glob("*.toml"))
SCENARIOS = bundled()
# Vision model manifests (the early-warning model's manifest is another format, read elsewhere).
MANIFESTS = [Path(__file__).parents[2] / "models" / "sim-markers.toml"]

sources = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda scheme, rest: f"{scheme}:{rest}",
        st.sampled_from(["rtsp", "rtsps", "http", "https", "file", "ftp", "javascript", "data", "", "A"]),
        st.text(max_size=60),
    ),
    st.sampled_from(
        ["http://", "rtsp://:554/x", "file:relative.mp4", "file:///etc/passwd", "../../etc/passwd", "push ",
         "http://[::1", "rtsp://user:pa@ss@host/x", "/dev/video0", "\x00", "http://a\nb/", PUSH_SOURCE]
    ),
)  # fmt: skip


@BOUNDED
@given(sources)
def test_any_camera_source_is_accepted_or_refused_with_a_reason(source: str) -> None:
    try:
        stored = check_source(source)
    except ConfigurationError as exc:
        assert str(exc)
        return
    except ValueError as exc:  # pragma: no cover - the failure this test exists to catch
        raise AssertionError(f"{source!r} raised {exc!r}, not ConfigurationError") from exc
    # What is accepted is push, a stream URL with a host, or an absolute file path.
    assert stored == PUSH_SOURCE or stored.startswith("/") or "://" in stored
    assert check_source(stored) == stored  # stored form is itself valid (round trip)


@BOUNDED
@given(
    st.one_of(
        json_safe,
        st.lists(st.fixed_dictionaries({"points": json_safe}, optional={"codes": json_safe})),
        # Valid polygons with hostile code lists, so the codes check itself is reached (it raised
        # TypeError on a list among the codes before).
        st.lists(
            st.fixed_dictionaries(
                {"points": st.just([[0, 0], [1, 0], [1, 1]]), "codes": st.lists(json_safe, max_size=3)}
            ),
            max_size=3,
        ),
    )
)
def test_any_zone_list_is_parsed_or_refused(raw: Any) -> None:
    try:
        zones = parse_zones(raw)
    except ConfigurationError as exc:
        assert str(exc)
        return
    assert all(0 <= x <= 1 and 0 <= y <= 1 for z in zones for x, y in z.points)


@BOUNDED
@given(st.text(max_size=70), st.floats(allow_nan=True) | st.integers(-(2**70), 2**70))
def test_any_camera_id_and_rate_are_validated(camera_id: str, fps: float) -> None:
    try:
        camera = validate_camera(
            enterprise_id="e", site_id="s", camera_id=camera_id, source="push", sample_fps=fps
        )
    except ConfigurationError:
        return
    assert 0 < camera.sample_fps <= 30 and camera.camera_id == camera_id


def damage(draw: st.DrawFn, text: str) -> str:
    how = draw(st.sampled_from(["truncate", "drop_line", "swap_value", "insert_garbage"]))
    lines = text.splitlines()
    if how == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    i = draw(st.integers(0, len(lines) - 1))
    if how == "drop_line":
        return "\n".join(lines[:i] + lines[i + 1 :])
    if how == "swap_value" and ("=" in lines[i] or ":" in lines[i]):
        sep = "=" if "=" in lines[i] else ":"
        value = draw(
            st.sampled_from(['"x"', "-1", "1e999", "nan", "[]", "{}", "true", "''", "99999999999999999999"])
        )
        lines[i] = lines[i].split(sep, 1)[0] + sep + " " + value
        return "\n".join(lines)
    lines.insert(i, draw(st.text(max_size=30)))
    return "\n".join(lines)


@BOUNDED
@given(st.sampled_from(PROFILES), st.data())
def test_damaged_profiles_load_or_are_refused(path: Path, data: st.DataObject) -> None:
    text = path.read_text(encoding="utf-8")
    load_profile_text(text, path.stem)  # the shipped file loads
    try:
        load_profile_text(data.draw(st.composite(lambda draw: damage(draw, text))()), path.stem)
    except ConfigurationError as exc:
        assert str(exc)


@BOUNDED
@given(st.sampled_from(SCENARIOS), st.data())
def test_damaged_scenarios_parse_or_are_refused(path: Path, data: st.DataObject) -> None:
    text = path.read_text(encoding="utf-8")
    parse(yaml.safe_load(text), default_name=path.stem)
    damaged = data.draw(st.composite(lambda draw: damage(draw, text))())
    try:
        doc = yaml.safe_load(damaged)
    except yaml.YAMLError:
        return  # `load` turns this into ScenarioError; `parse` takes documents
    try:
        parse(doc, default_name=path.stem)
    except ScenarioError as exc:
        assert str(exc)


@BOUNDED
@given(st.sampled_from(MANIFESTS), st.data())
def test_damaged_model_manifests_load_or_are_refused(path: Path, data: st.DataObject) -> None:
    text = path.read_text(encoding="utf-8")
    damaged = data.draw(st.composite(lambda draw: damage(draw, text))())
    # Beside the original, so a relative `file = "x.onnx"` still finds the real graph.
    copy = path.with_name(f".hypothesis-{path.stem}.toml")
    copy.write_text(damaged, encoding="utf-8")
    try:
        load_manifest(copy)
    except ConfigurationError as exc:
        assert str(exc)
    finally:
        copy.unlink()


def test_shipped_manifests_load() -> None:
    assert MANIFESTS
    for path in MANIFESTS:
        assert tomllib.loads(path.read_text())
        load_manifest(path)
