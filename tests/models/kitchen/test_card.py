"""The shipped kitchen model travels with its card, its int8 variant and its attribution."""

from __future__ import annotations

from detectors.vision.manifest import default_models_dir, find_manifest, load_manifest


def test_the_card_records_figures_licences_and_attribution() -> None:
    card = (default_models_dir() / "kitchen.md").read_text(encoding="utf-8")
    for needed in (
        "andrewmvd (Kaggle), CC0",
        "Ethan Mai",
        "smoking-detection-wpb75 v3, Roboflow Universe",
        "CC BY 4.0",
        "## Held-out accuracy",
        "### int8",
        "int8 / fp32",
        "## Known blind spots",
    ):
        assert needed in card, f"the model card lacks {needed!r}"
    for name in ("without_mask", "with_mask", "cigarette"):
        assert f"| {name} |" in card


def test_the_int8_variant_describes_the_same_model() -> None:
    fp32 = load_manifest(find_manifest("kitchen"))
    int8 = load_manifest(find_manifest("kitchen-int8"))
    assert int8.classes == fp32.classes and int8.input_size == fp32.input_size
    assert dict(int8.violations) == dict(fp32.violations)
    assert int8.path.stat().st_size < fp32.path.stat().st_size / 2
