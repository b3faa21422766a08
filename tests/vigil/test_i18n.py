"""The message catalogues: every domain complete in both languages, and the language negotiation.

A key missing in one language, or a placeholder one language fills and the other does not, would
show a person a raw key or raise at render time; these tests catch it before it ships."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import orjson
import pytest

from vigil import i18n
from vigil.i18n import DEFAULT_LANGUAGE, LANGUAGES, catalogue, domains, negotiate, placeholders

ROOT = Path(i18n.__file__).parent / "data" / "i18n"


def test_every_language_has_the_same_domains() -> None:
    for language in LANGUAGES:
        found = sorted(p.stem for p in (ROOT / language).glob("*.json"))
        assert found == domains(), f"{language} has catalogues {found}, {DEFAULT_LANGUAGE} has {domains()}"
    assert {"alerts", "ui"} <= set(domains())


def mismatches(zh: Mapping[str, str], en: Mapping[str, str]) -> list[str]:
    """What keeps two catalogues of one domain from being the same set of texts, in words."""
    problems = [f"{k}: only in zh-CN" for k in sorted(zh.keys() - en.keys())]
    problems += [f"{k}: only in en" for k in sorted(en.keys() - zh.keys())]
    for key in sorted(zh.keys() & en.keys()):
        if placeholders(zh[key]) != placeholders(en[key]):
            problems.append(f"{key}: placeholders {placeholders(zh[key])} vs {placeholders(en[key])}")
        if not zh[key].strip() or not en[key].strip():
            problems.append(f"{key}: empty")
    return problems


@pytest.mark.parametrize("domain", domains())
def test_both_languages_have_the_same_keys_and_placeholders(domain: str) -> None:
    assert mismatches(catalogue("zh-CN", domain), catalogue("en", domain)) == []


@pytest.mark.parametrize("domain", domains())
def test_the_files_are_flat_objects_of_texts(domain: str) -> None:
    for language in LANGUAGES:
        raw = orjson.loads((ROOT / language / f"{domain}.json").read_bytes())
        assert isinstance(raw, dict) and all(isinstance(v, str) for v in raw.values()), (language, domain)


def test_the_parity_check_notices_a_missing_key_or_placeholder() -> None:
    """The check above is only worth having if it notices: drop a key, change a placeholder."""
    zh, en = dict(catalogue("zh-CN", "alerts")), dict(catalogue("en", "alerts"))
    assert mismatches(zh, en) == []
    dropped = dict(en)
    del dropped["summary.COLD_CHAIN_FREEZER_WARM"]
    assert mismatches(zh, dropped) == ["summary.COLD_CHAIN_FREEZER_WARM: only in zh-CN"]
    renamed = {**en, "phrase.lasting": " for {duration}"}
    assert mismatches(zh, renamed) == ["phrase.lasting: placeholders {'held'} vs {'duration'}"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "zh-CN"),
        ("", "zh-CN"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        ("zh-TW", "zh-CN"),
        ("en-US,en;q=0.9", "en"),
        ("EN", "en"),
        ("fr-FR, en;q=0.5", "en"),
        ("fr-FR, de;q=0.5", "zh-CN"),
        ("en;q=0.2, zh;q=0.9", "zh-CN"),  # the weights decide, not the order
        ("zh;q=0, en", "en"),  # q=0 means "not this one"
        ("*", "zh-CN"),
        ("en;q=garbage, zh", "zh-CN"),
    ],
)
def test_negotiate(header: str | None, expected: str) -> None:
    assert negotiate(header) == expected
