"""One sentence for a configuration file that pydantic refused: the file, the key path, what was
expected and what was found, e.g. `freezer.toml: metrics.temperature.max: expected a number, got 'warm'`.

Profiles, model manifests and scenarios are parsed by pydantic models; each loader turns the
`ValidationError` into its own error type with `explain`, so a bad edit is refused with the same
kind of message whatever the file.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from vigil.errors import show

Loc = tuple[int | str, ...]
_SIMPLE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# What each pydantic error type expected, in words: {mapping} is "table" (TOML) or "mapping" (YAML),
# {number} "a whole number" for an int field, else "a number".
_EXPECTED = {
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "string_type": "a string", "bool_type": "true or false", "list_type": "a list", "tuple_type": "a list",
    "dict_type": "a {mapping}", "model_type": "a {mapping}", "model_attributes_type": "a {mapping}",
    "invalid_key": "a string key", "greater_than": "{number} greater than {gt}",
    "greater_than_equal": "{number} of at least {ge}", "less_than": "{number} less than {lt}",
    "less_than_equal": "{number} of at most {le}", "literal_error": "{expected}",
    "too_short": "at least {min_length} item(s)", "too_long": "at most {max_length} item(s)",
    "string_too_short": "at least {min_length} character(s)",
}  # fmt: skip


def key_path(loc: Sequence[int | str]) -> str:
    """`("rules", 2, "above")` as `rules[2].above`; a dict key's own check (`[key]`) names the key."""
    path = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        elif _SIMPLE_KEY.fullmatch(part):
            path += f".{part}" if path else part
        else:
            path += f"[{part!r}]"
    return path


def explain(
    error: ValidationError,
    model: type[BaseModel],
    source: str | None = None,
    *,
    at: Loc = (),
    mapping: str = "table",
) -> str:
    """`source: key.path: expected …, got …` for the first problem of `error`, raised by
    `model.model_validate` (unknown keys come first: a misspelt key is usually why another is
    missing). `at` is where `model` sits in the file, for models validated one part at a time."""
    errors = error.errors()
    extra = [e for e in errors if e["type"] == "extra_forbidden"]
    first = extra[0] if extra else errors[0]
    loc = tuple(first["loc"])
    if first["type"] == "extra_forbidden":
        loc = loc[:-1]
        unknown = sorted(str(e["loc"][-1]) for e in extra if tuple(e["loc"][:-1]) == loc)
        inner = _model_at(model, loc)
        what = f"unknown keys {unknown}"
        if inner is not None:
            title = inner.model_config.get("title")
            what += f" for {'an' if title[:1] in 'aeiou' else 'a'} {title}" if title else ""
            allowed = sorted(f.alias or name for name, f in inner.model_fields.items())
            what += f"; expected some of {', '.join(allowed)}"
    else:
        whole = _type_at(model, loc) is int
        what = _sentence(
            first, mapping, "a whole number" if whole else "a number", key=loc[-1:] == ("[key]",)
        )
    path = key_path((*at, *loc))
    return ": ".join(part for part in (source, path, what) if part)


def _sentence(error: ErrorDetails, mapping: str, number: str, *, key: bool = False) -> str:
    """What `error` expected and what it got; `key`: the value is a key of a table (`[key]`)."""
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "missing":
        return "missing (required)"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", error["msg"]))
    template = _EXPECTED.get(kind)
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        template = "a non-empty string"
    elif kind == "too_short" and ctx.get("min_length") == 1:
        template = "a non-empty list"
    elif kind == "string_type" and key:
        template = "a string key"
    if template is None:  # pydantic's own words: "Input should be …"
        expected = error["msg"].removeprefix("Input should be ")
    else:
        words = {k: _word(v) for k, v in ctx.items() if k not in ("mapping", "number")}
        expected = template.format(mapping=mapping, number=number, **words)
    return f"expected {expected}, got {show(error['input'])}"


def _word(value: object) -> object:
    """A bound as written: 1, not 1.0 (pydantic hands a float field's bounds over as floats)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class that validates the table at `loc` inside `model`, if one does."""
    found = _type_at(model, loc)
    return found if isinstance(found, type) and issubclass(found, BaseModel) else None


def _type_at(model: type[BaseModel], loc: Loc) -> Any:
    """The type that validates the value at `loc` inside `model` (None where it cannot tell)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if part == "[key]":
            return None
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {f.alias or name: f for name, f in current.model_fields.items()}
            if not isinstance(part, str) or part not in fields:
                return None
            current = fields[part].annotation
            continue
        origin, args = get_origin(current), get_args(current)
        if origin in (list, tuple, Sequence) and isinstance(part, int) and args:
            current = args[0]
        elif origin in (dict, Mapping) and len(args) == 2:
            current = args[1]
        else:
            return None
    return _unwrap(current)


def _unwrap(annotation: Any) -> Any:
    """`Annotated[X, …]` as X, `X | None` as X."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            arms = [a for a in get_args(annotation) if a is not type(None)]
            if len(arms) != 1:
                return annotation
            annotation = arms[0]
        else:
            return annotation
