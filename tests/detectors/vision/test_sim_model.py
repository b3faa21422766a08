"""The simulator's marker model through the real onnxruntime backend, and the plumbing around it:
registry, letterbox, batches (dynamic and fixed), the committed file staying in step with the
palette, and the benchmark's compute stand-in."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from detectors.vision.backends import (
    BACKENDS,
    DetectorBackend,
    YoloOnnxBackend,
    load_backend,
    register_backend,
)
from detectors.vision.manifest import ModelManifest, default_models_dir, find_manifest, load_manifest
from models import build_sim_model as build
from simulators import palette as pal
from vigil.errors import ConfigurationError

CLASSES = ("without_mask", "cigarette", "rat")


@pytest.fixture(scope="module")
def manifest() -> ModelManifest:
    return load_manifest(find_manifest("sim-markers"))


@pytest.fixture(scope="module")
def backend(manifest: ModelManifest) -> Iterator[DetectorBackend]:
    with load_backend(manifest, max_batch=4, intra_op_threads=1) as b:
        yield b


def _wall(height: int = 480, width: int = 640) -> np.ndarray:
    return np.full((height, width, 3), pal.WALL, np.uint8)


def _centre(xyxy: np.ndarray) -> tuple[float, float]:
    return float(xyxy[0] + xyxy[2]) / 2, float(xyxy[1] + xyxy[3]) / 2


# --- the committed model ----------------------------------------------------------------------------


def test_the_committed_model_matches_the_palette() -> None:
    """Regenerate with `python -m models.build_sim_model` when this fails after a palette change."""
    directory = default_models_dir()
    assert (directory / "sim-markers.onnx").read_bytes() == build.build_sim_model().SerializeToString()
    expected = build.manifest_text("sim-markers", "sim-markers.onnx", build.SIM_DESCRIPTION)
    assert (directory / "sim-markers.toml").read_text(encoding="utf-8") == expected
    assert (directory / "sim-markers.onnx").stat().st_size <= 100_000


def test_scores_are_one_at_a_marker_and_tiny_at_the_palette_distance() -> None:
    session = ort.InferenceSession(
        build.build_sim_model().SerializeToString(), providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(1)
    for k, name in enumerate(CLASSES):
        rgb = np.array(pal.MARKERS[name][::-1], np.float32) / 255
        direction = rng.normal(size=3).astype(np.float32)
        near = rgb + pal.MIN_DISTANCE * direction / np.linalg.norm(direction)
        tensor = np.stack([np.broadcast_to(c[:, None, None], (3, 320, 320)) for c in (rgb, near)])
        (out,) = session.run(None, {"images": np.ascontiguousarray(tensor, dtype=np.float32)})
        assert out.shape == (2, 4 + len(CLASSES), 1600)
        assert out[0, 4 + k].min() > 0.99, name
        assert out[1, 4 + k].max() < 0.05, name


# --- detection through the backend -----------------------------------------------------------------


def test_a_bare_face_is_found_where_it_is(backend: DetectorBackend) -> None:
    image = _wall()
    image[200:240, 300:340] = pal.BARE_FACE  # centre (320, 220)
    (found,) = backend.detect([image])
    assert found.class_id.tolist() == [CLASSES.index("without_mask")]
    assert found.confidence[0] > 0.9
    cx, cy = _centre(found.xyxy[0])
    assert abs(cx - 320) <= 12 and abs(cy - 220) <= 12


def test_a_masked_face_shows_nothing(backend: DetectorBackend) -> None:
    # As the simulator draws a masked worker: hair, a 10 px band of skin at the eyes, the mask.
    image = _wall()
    image[116:121, 292:348] = pal.HAIR
    image[121:131, 295:345] = pal.SKIN_BAND
    image[131:168, 295:345] = pal.MASK
    assert len(backend.detect([image])[0]) == 0


def test_a_batch_of_different_sizes_at_once(backend: DetectorBackend) -> None:
    face = _wall()
    face[100:140, 500:540] = pal.BARE_FACE
    wide = _wall(720, 1280)
    cv2.ellipse(wide, (400, 600), (76, 46), 0, 0, 360, pal.RAT_FUR, -1)  # rat scaled x2 for 720p
    tall = _wall(500, 300)
    cv2.circle(tall, (150, 350), 25, pal.CIGARETTE_EMBER, -1)
    quiet = _wall(240, 320)
    results = backend.detect([face, wide, tall, quiet])
    expected = [("without_mask", (520, 120)), ("rat", (400, 600)), ("cigarette", (150, 350))]
    for found, (name, (x, y)) in zip(results, expected, strict=False):
        assert [CLASSES[c] for c in found.class_id] == [name]
        cx, cy = _centre(found.xyxy[0])
        assert abs(cx - x) <= 12 and abs(cy - y) <= 12, (name, cx, cy)
    assert len(results[3]) == 0
    # More images than one batch holds are split into batches, order kept.
    again = backend.detect([quiet, face] * 3)
    assert [len(d) for d in again] == [0, 1] * 3
    assert backend.detect([]) == []


def test_prepare_letterboxes_like_the_reference(backend: DetectorBackend) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 500, 3), dtype=np.uint8)  # wide: grey bands above and below
    prepared = backend.prepare([image])
    assert prepared.count == 1 and prepared.tensor.shape == (1, 3, 320, 320)
    assert prepared.pad.tolist() == [[0, 64]] and prepared.sizes.tolist() == [[500, 300]]
    assert prepared.scale[0].tolist() == pytest.approx([320 / 500, 192 / 300])
    canvas = np.full((320, 320, 3), 114, np.uint8)
    canvas[64:256] = cv2.resize(image, (320, 192), interpolation=cv2.INTER_LINEAR)
    reference = canvas[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255
    np.testing.assert_allclose(prepared.tensor[0], reference, atol=1e-6)
    # The buffers are reused: a narrow image, letterboxed to columns 80..240, gets clean grey
    # where the wide one was (both double buffers held it).
    backend.prepare([image])
    narrow = backend.prepare([np.zeros((100, 50, 3), np.uint8)])
    assert narrow.pad.tolist() == [[80, 0]]
    np.testing.assert_allclose(narrow.tensor[0, :, :, :80], 114 / 255, atol=1e-6)
    np.testing.assert_allclose(narrow.tensor[0, :, :, 240:], 114 / 255, atol=1e-6)
    assert not narrow.tensor[0, :, :, 80:240].any()


def test_prepare_refuses_what_is_not_a_bgr_frame(backend: DetectorBackend) -> None:
    with pytest.raises(ValueError, match="expected BGR uint8"):
        backend.prepare([np.zeros((10, 10), np.uint8)])
    with pytest.raises(ValueError, match="prepare takes 1 to 4 images"):
        backend.prepare([_wall()] * 5)


def test_a_fixed_batch_model_runs_full_padded_batches(tmp_path: Path) -> None:
    model = build.build_sim_model()
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].ClearField("dim_param")
        value.type.tensor_type.shape.dim[0].dim_value = 2
    onnx.save(model, str(tmp_path / "fixed.onnx"))
    text = build.manifest_text("fixed", "fixed.onnx", "batch fixed at 2")
    (tmp_path / "fixed.toml").write_text(text, encoding="utf-8")
    with load_backend(load_manifest(tmp_path / "fixed.toml"), max_batch=8) as fixed:
        assert fixed.batch_size == 2
        face = _wall()
        face[200:240, 300:340] = pal.BARE_FACE
        prepared = fixed.prepare([face])
        assert prepared.tensor.shape[0] == 2 and not prepared.tensor[1].any()
        assert [len(d) for d in fixed.detect([face, _wall(), face])] == [1, 0, 1]


# --- the registry -----------------------------------------------------------------------------------


def test_the_registry(manifest: ModelManifest) -> None:
    assert BACKENDS["yolo"] is YoloOnnxBackend
    odd = dataclasses.replace(manifest, type="tflite")
    with pytest.raises(ConfigurationError, match="unknown backend 'tflite'; known types: yolo"):
        load_backend(odd)
    with pytest.raises(ValueError, match="already registered"):

        @register_backend
        class Impostor(YoloOnnxBackend):
            type = "yolo"


def test_unavailable_providers_are_refused(manifest: ModelManifest) -> None:
    with pytest.raises(ConfigurationError, match="none of the requested onnxruntime providers"):
        load_backend(manifest, providers=["NoSuchExecutionProvider"])


def test_a_closed_backend_says_so(manifest: ModelManifest) -> None:
    b = load_backend(manifest, max_batch=1)
    b.close()
    with pytest.raises(RuntimeError, match="closed"):
        b.detect([_wall()])


# --- the benchmark's stand-in -----------------------------------------------------------------------


def test_the_compute_stand_in_builds_a_valid_model(tmp_path: Path) -> None:
    path = build.build_compute_model(tmp_path / "compute.onnx", input_size=64)
    m = load_manifest(path)
    assert m.path == tmp_path / "compute.onnx" and m.input_size == (64, 64)
    with load_backend(m, max_batch=2) as b:
        prepared = b.prepare([_wall(), _wall(100, 100)])
        (out,) = b.infer(prepared)
        assert out.shape == (2, 4 + len(CLASSES), 8 * 8 + 4 * 4 + 2 * 2)
        assert len(b.decode([out], prepared)) == 2
