"""One sentence for a configuration file that pydantic refused: file, key path, what was expected
and what was found (vigil/config_errors.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vigil.config_errors import explain, key_path


class _Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, title="limit")

    max: float = Field(lt=100)
    count: int = Field(1, ge=1)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, title="example")

    name: str = Field(min_length=1)
    mode: Literal["fast", "slow"] = "fast"
    limits: dict[str, _Limits] = {}
    items: Annotated[list[int], Field(min_length=1)] = [1]
    tags: dict[str, Any] = {}
    size: int | None = None

    @field_validator("size")
    @classmethod
    def _even(cls, value: int | None) -> int | None:
        if value is not None and value % 2:
            raise ValueError(f"expected an even size, got {value}")
        return value


def sentence(raw: object, source: str | None = "f.toml", **kwargs: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        _File.model_validate(raw)
    return explain(caught.value, _File, source, **kwargs)


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        ((), ""),
        (("name",), "name"),
        (("rules", 2, "above"), "rules[2].above"),
        (("limits", "cpu temp", "max"), "limits['cpu temp'].max"),
        (("metrics", "Temp", "[key]"), "metrics.Temp"),
        ((0, "id"), "[0].id"),
    ],
)
def test_key_paths(loc: tuple[int | str, ...], path: str) -> None:
    assert key_path(loc) == path


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "f.toml: name: missing (required)"),
        ({"name": 5}, "f.toml: name: expected a string, got 5"),
        ({"name": ""}, "f.toml: name: expected a non-empty string, got ''"),
        ({"name": "a", "mode": "quick"}, "f.toml: mode: expected 'fast' or 'slow', got 'quick'"),
        # Bounds as written (100, not 100.0); an int field expects a whole number.
        (
            {"name": "a", "limits": {"cpu": {"max": 120}}},
            "f.toml: limits.cpu.max: expected a number less than 100, got 120",
        ),
        (
            {"name": "a", "limits": {"cpu": {"max": 1, "count": 0}}},
            "f.toml: limits.cpu.count: expected a whole number of at least 1, got 0",
        ),
        (
            {"name": "a", "limits": {"cpu": {"max": True}}},
            "f.toml: limits.cpu.max: expected a number, got True",
        ),
        ({"name": "a", "items": []}, "f.toml: items: expected a non-empty list, got []"),
        ({"name": "a", "items": [1, "2"]}, "f.toml: items[1]: expected a whole number, got '2'"),
        ({"name": "a", "tags": {1: "x"}}, "f.toml: tags[1]: expected a string key, got 1"),
        ({"name": "a", "limits": 5}, "f.toml: limits: expected a table, got 5"),
        ({"name": "a", "size": 3}, "f.toml: size: expected an even size, got 3"),
        # Unknown keys come first, with what the table takes.
        (
            {"colour": 1},
            "f.toml: unknown keys ['colour'] for an example; "
            "expected some of items, limits, mode, name, size, tags",
        ),
        (
            {"name": "a", "limits": {"cpu": {"max": 1, "mn": 0, "avg": 2}}},
            "f.toml: limits.cpu: unknown keys ['avg', 'mn'] for a limit; expected some of count, max",
        ),
    ],
)
def test_one_sentence_names_the_key_what_was_expected_and_what_was_found(raw: object, message: str) -> None:
    assert sentence(raw) == message


def test_mapping_words_source_and_position() -> None:
    assert sentence([1], None, mapping="mapping") == "expected a mapping, got [1]"
    assert sentence({"name": "a", "limits": 5}, "s.yaml", mapping="mapping", at=("sites", 0)) == (
        "s.yaml: sites[0].limits: expected a mapping, got 5"
    )


def test_what_was_found_is_bounded() -> None:
    message = sentence({"name": "x" * 10_000, "mode": "y" * 10_000})
    assert message.startswith("f.toml: mode: expected 'fast' or 'slow', got 'yyy") and len(message) < 200
