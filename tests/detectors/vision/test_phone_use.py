"""Phone use (issue 23.3): the held-by relation on synthetic boxes, its manifest declaration, the
service's confirmation with zones, and the shipped COCO model on a real photo of a held phone."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from detectors.vision.backends.yolo import YoloOnnxBackend
from detectors.vision.detections import Detections
from detectors.vision.held import apply_held_rules, held, held_rules, inside_fraction
from detectors.vision.manifest import ModelManifest, find_manifest, load_manifest
from detectors.vision.service import VisionDetector, _Frame
from models.phone_use import LABELS, evaluate, load_image, read_labels
from shell.cli import main
from vigil.cameras import Camera, Zone
from vigil.errors import ConfigurationError
from vigil.events import Violation
from vigil.frames import FrameMeta
from vigil.settings import Settings
from vigil.summaries import render_both

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
CODE = "KITCHEN_PHONE_USE"
PERSON, PHONE = 0, 67  # COCO class indices
# A masks-set photo of a woman holding her phone in front of her (labelled 1 in the CSV).
HELD_PHOTO = "datasets/masks/images/maksssksksss18.jpg"


@pytest.fixture(scope="module")
def coco() -> ModelManifest:
    return load_manifest(find_manifest("coco-person-phone"))


def dets(*rows: tuple[int, float, tuple[float, float, float, float]]) -> Detections:
    """Detections from (class, score, xyxy) rows."""
    return Detections(
        np.array([r[2] for r in rows], np.float32).reshape(-1, 4),
        np.array([r[1] for r in rows], np.float32),
        np.array([r[0] for r in rows], np.int32),
    )


# --- the relation, pure -----------------------------------------------------------------------------


def test_inside_fraction_is_the_share_of_the_objects_own_area() -> None:
    objects = np.array([[10, 10, 20, 20], [95, 10, 105, 20], [200, 200, 210, 210], [5, 5, 5, 9]], np.float32)
    person = np.array([[0, 0, 100, 100]], np.float32)
    # Wholly inside, half out over the right edge, far away, a box without area.
    assert inside_fraction(objects, person)[:, 0].tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0])


def test_held_needs_the_share_and_some_holder() -> None:
    phones = np.array([[10, 10, 20, 20], [95, 10, 105, 20], [300, 300, 310, 310]], np.float32)
    people = np.array([[0, 0, 100, 100], [500, 0, 600, 100]], np.float32)
    assert held(phones, people, 0.6).tolist() == [True, False, False]
    assert held(phones, people, 0.5).tolist() == [True, True, False]
    assert held(phones, np.zeros((0, 4), np.float32), 0.5).tolist() == [False, False, False]
    assert held(np.zeros((0, 4), np.float32), people, 0.5).tolist() == []


def test_apply_held_rules_drops_unheld_phones_and_names_their_holders(coco: ModelManifest) -> None:
    found = dets(
        (PERSON, 0.9, (0, 0, 100, 200)),
        (PHONE, 0.6, (40, 50, 60, 80)),  # in the confident person's hand
        (PHONE, 0.6, (300, 50, 320, 80)),  # on a shelf, nobody near
        (PERSON, 0.4, (290, 0, 400, 200)),  # a person too unsure to hold anything
        (PHONE, 0.6, (350, 50, 370, 80)),  # "held" only by that unsure person
    )
    counts = np.ones(len(found), bool)
    holders = apply_held_rules(found, counts, held_rules(coco))
    assert counts.tolist() == [True, True, False, True, False]  # people untouched by the rule
    assert np.flatnonzero(holders[1]).tolist() == [0]
    assert not holders[[0, 2, 3, 4]].any()


def test_apply_held_rules_on_a_frame_without_phones(coco: ModelManifest) -> None:
    counts = np.array([True])
    holders = apply_held_rules(dets((PERSON, 0.9, (0, 0, 10, 10))), counts, held_rules(coco))
    assert counts.tolist() == [True] and holders.shape == (1, 1) and not holders.any()


# --- the manifest -------------------------------------------------------------------------------------


def test_the_shipped_manifest_declares_phone_use(coco: ModelManifest) -> None:
    rule = coco.violations["cell phone"]
    assert rule.code == CODE and rule.when == "always"
    assert rule.held_by is not None and rule.held_by.holder == "person"
    assert coco.violations["person"].code == "KITCHEN_AFTER_HOURS_PRESENCE"  # still there


BODY = """\
name = "x"
file = "x.onnx"
type = "yolo"
layout = "v8"
input_size = [64, 64]
classes = ["person", "cell phone"]
score_threshold = 0.3

[violations."cell phone"]
code = "KITCHEN_PHONE_USE"
held_by = "person"
"""


def _write_manifest(tmp_path: Path, body: str) -> None:
    """`body` as tmp_path/x.toml beside a pass-through graph with the (1, 6, n) output it declares."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["out"])],
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 6, "n"])],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "x.onnx"))
    (tmp_path / "x.toml").write_text(body, encoding="utf-8")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("", None),
        ("holder_min_score = 0.2\n", "holder_min_score: 0.2 is below score_threshold"),
        ("held_inside = 1.5\n", "held_inside"),
    ],
)
def test_held_by_fields_are_checked(tmp_path: Path, extra: str, message: str | None) -> None:
    _write_manifest(tmp_path, BODY + extra)
    if message is None:
        rule = load_manifest(tmp_path / "x.toml").violations["cell phone"].held_by
        assert rule is not None and (rule.holder, rule.min_score, rule.min_inside) == ("person", 0.5, 0.5)
        return
    with pytest.raises(ConfigurationError, match=message):
        load_manifest(tmp_path / "x.toml")


@pytest.mark.parametrize("holder", ["cell phone", "dog"])
def test_the_holder_must_be_another_known_class(tmp_path: Path, holder: str) -> None:
    _write_manifest(tmp_path, BODY.replace('held_by = "person"', f'held_by = "{holder}"'))
    with pytest.raises(ConfigurationError, match=r"held_by.*must be another class"):
        load_manifest(tmp_path / "x.toml")


# --- the service's confirmation, without brokers ------------------------------------------------------


@pytest.fixture
def detector(coco: ModelManifest, tmp_path: Path) -> VisionDetector:
    # Constructing the service opens nothing: the URLs are only read when it starts.
    settings = Settings(
        kafka_bootstrap="127.0.0.1:9",
        database_url="postgresql://vigil@127.0.0.1:9/vigil",
        evidence_dir=str(tmp_path / "evidence"),
        vision_confirm_k=2,
        vision_confirm_n=3,
    )
    return VisionDetector(settings, manifest=coco)


BLACK = cv2.imencode(".jpg", np.zeros((480, 640, 3), np.uint8))[1].tobytes()


def confirm(
    detector: VisionDetector, found: Detections, zones: tuple[Zone, ...] = (), count: int = 3
) -> list[Violation]:
    """The violations confirmed over `count` frames (640x480, 500 ms apart) that all show `found`."""
    camera = Camera("cam-phone", "ent", "site", "push", 2.0, zones)
    violations: list[Violation] = []
    for i in range(count):
        meta = FrameMeta("cam-phone", "ent", "site", 1_765_000_000_000 + i * 500, i, "motion")
        violations += detector._confirm(_Frame(meta, camera, BLACK), found, (640, 480))
    return violations


def frames_of(detector: VisionDetector, found: Detections, zones: tuple[Zone, ...] = ()) -> list[str]:
    return [v.code for v in confirm(detector, found, zones)]


HELD = dets((PERSON, 0.9, (100, 50, 300, 450)), (PHONE, 0.7, (180, 150, 220, 210)))


def test_a_held_phone_is_confirmed_with_its_holder_in_the_evidence(detector: VisionDetector) -> None:
    [found] = confirm(detector, HELD, count=2)  # k = 2
    assert found.code == CODE and found.severity == "minor"
    assert sorted(b["class"] for b in found.evidence["boxes"]) == ["cell phone", "person"]
    assert found.evidence["params"]["score"] == pytest.approx(0.7)  # the phone's, not the person's
    assert render_both(CODE, found.evidence) == {
        "summary_zh": "后厨操作时玩手机：检出人员手持手机（置信度 70%，最近 3 帧中 2 帧检出）",
        "summary_en": "Phone use while handling food: a person holding a phone (confidence 70%, seen in 2 of "
        "the last 3 frames)",
    }


def test_a_phone_nobody_holds_raises_nothing(detector: VisionDetector) -> None:
    alone = dets((PERSON, 0.9, (400, 50, 600, 450)), (PHONE, 0.7, (180, 150, 220, 210)))
    assert frames_of(detector, alone) == []
    unsure = dets((PERSON, 0.45, (100, 50, 300, 450)), (PHONE, 0.7, (180, 150, 220, 210)))
    assert frames_of(detector, unsure) == []


def test_only_in_the_food_handling_zone_where_one_is_drawn(detector: VisionDetector) -> None:
    # The counter is the left half; the phone (centre x 200 of 640) is on it, then off it.
    counter = Zone("counter", ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)), frozenset({CODE}))
    assert frames_of(detector, HELD, (counter,)) == [CODE]
    dining = Zone("dining", ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)), frozenset({CODE}))
    detector._confirmers.clear()
    assert frames_of(detector, HELD, (dining,)) == []
    # A zone for other codes only does not restrict phone use.
    other = Zone(
        "bins", ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)), frozenset({"KITCHEN_BIN_UNCOVERED"})
    )
    detector._confirmers.clear()
    assert frames_of(detector, HELD, (other,)) == [CODE]


# --- the real model on a real photo ------------------------------------------------------------------


def test_the_coco_model_finds_a_held_phone_in_a_real_photo(coco: ModelManifest) -> None:
    if not (SHARED / HELD_PHOTO).is_file():
        pytest.skip(f"the shared photo {HELD_PHOTO} is absent")
    with YoloOnnxBackend(coco, intra_op_threads=1) as backend:
        (found,) = backend.detect([load_image(SHARED, HELD_PHOTO)])
    rule = coco.violations["cell phone"]
    counts = (found.class_id == PHONE) & (found.confidence >= rule.min_score)
    assert counts.any(), found
    holders = apply_held_rules(found, counts, held_rules(coco))
    assert counts.any(), "the phone is not held by any confident person"
    assert (found.class_id[holders[counts].any(axis=0)] == PERSON).all()


def test_the_labelled_set_and_its_evaluation(coco: ModelManifest) -> None:
    labels = read_labels(LABELS)
    assert len(labels) >= 150 and sum(item.label for item in labels) >= 15
    assert len({item.file for item in labels}) == len(labels)
    if not SHARED.is_dir():
        pytest.skip(f"the shared data {SHARED} is absent")
    # Two held phones, a cigarette the model takes for a phone, a vtest frame: the whole path.
    few = [i for i in labels if i.file == HELD_PHOTO]
    few += [i for i in labels if i.label and i.file != HELD_PHOTO][:1]
    few += [i for i in labels if i.note == "cigarette"][:1] + [
        i for i in labels if i.file.startswith("video/")
    ][:1]
    [operating, *_] = evaluate(coco, SHARED, few)
    assert operating.held and operating.threshold == coco.violations["cell phone"].min_score
    assert (operating.images, operating.positives) == (4, 2)
    assert operating.tp >= 1 and operating.tp + operating.fn == 2


def test_models_eval_prints_phone_use_precision_and_recall(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not (SHARED / HELD_PHOTO).is_file():
        pytest.skip(f"the shared photo {HELD_PHOTO} is absent")
    chosen = [i for i in read_labels(LABELS) if i.file == HELD_PHOTO or i.note == "cigarette"][:2]
    labels = tmp_path / "labels.csv"
    rows = "".join(f"{i.file},{int(i.label)},{i.how},{i.note}\n" for i in chosen)
    labels.write_text("# two of the shipped labels\nfile,label,how,note\n" + rows, encoding="utf-8")
    args = ["models", "eval", "--model", "coco-person-phone", "--data", str(SHARED / "datasets")]
    assert main([*args, "--phone-labels", str(labels), "--json", str(tmp_path / "out.json")]) == 0
    out = capsys.readouterr().out
    assert "phone use (KITCHEN_PHONE_USE): 2 labelled images" in out and "<- operating point" in out
    [operating, *_] = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert operating["held"] and operating["positives"] == 1 and operating["tp"] == 1
