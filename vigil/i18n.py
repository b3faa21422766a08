"""Message catalogues: every string a person reads, in zh-CN (the default) and English.

One JSON file per language and domain, `vigil/data/i18n/<language>/<domain>.json`, a flat object of
dotted keys to texts with `{name}` placeholders: `ui` is the dashboard's (served to the browser as
it is), `alerts` the alert summaries and notices rendered per violation code. Both languages hold
the same keys (tests/vigil/test_i18n.py). Codes, ids and units are data, never catalogued.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Final, Literal, get_args

import orjson

from vigil.errors import ConfigurationError

Language = Literal["zh-CN", "en"]
LANGUAGES: Final[tuple[Language, ...]] = get_args(Language)
DEFAULT_LANGUAGE: Final[Language] = "zh-CN"


@lru_cache(maxsize=32)
def catalogue(language: Language, domain: str) -> Mapping[str, str]:
    """The texts of `domain` in `language` (a missing file is a broken install, said as such)."""
    if language not in LANGUAGES:
        raise ConfigurationError(f"no message catalogue for language {language!r}; known: {LANGUAGES}")
    where = f"message catalogue vigil/data/i18n/{language}/{domain}.json"
    entry = resources.files("vigil").joinpath("data", "i18n", language, f"{domain}.json")
    try:
        texts = orjson.loads(entry.read_bytes())
    except FileNotFoundError:
        raise ConfigurationError(f"{where} is missing") from None
    if not isinstance(texts, dict) or not all(isinstance(v, str) for v in texts.values()):
        raise ConfigurationError(f"{where} must map keys to texts")
    return texts


def domains() -> list[str]:
    """Every domain the default language has a catalogue for."""
    folder = resources.files("vigil").joinpath("data", "i18n", DEFAULT_LANGUAGE)
    return sorted(e.name.removesuffix(".json") for e in folder.iterdir() if e.name.endswith(".json"))


def placeholders(text: str) -> set[str]:
    """The `{name}` placeholders of a text (both languages of a key must use the same ones)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def text(key: str, language: Language = DEFAULT_LANGUAGE, domain: str = "alerts", **params: object) -> str:
    """The text of `key` with `params` filled in. A key missing from the catalogue is a KeyError:
    the parity test keeps both languages complete, so a miss is a programming error."""
    return catalogue(language, domain)[key].format_map(params)


def both(key: str, domain: str = "alerts", **params: object) -> dict[Language, str]:
    """The text in every language, for what is stored or sent once and read in either (notices)."""
    return {language: text(key, language, domain, **params) for language in LANGUAGES}


def negotiate(accept_language: str | None) -> Language:
    """The catalogue language for an `Accept-Language` header: the one we have that the client
    weights highest (`q`, 1 when absent; any `zh` means zh-CN, any `en` English; `q=0` or a weight
    that does not parse rules a tag out), the earlier on a tie, else the default."""
    best: tuple[float, Language] | None = None
    for part in (accept_language or "").split(","):
        tag, _, params = part.partition(";")
        tag = tag.strip().lower()
        language: Language | None = (
            "zh-CN" if tag.startswith("zh") else "en" if tag.startswith("en") else None
        )
        if language is None:
            continue
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if weight > 0 and (best is None or weight > best[0]):
            best = (weight, language)
    return best[1] if best is not None else DEFAULT_LANGUAGE
