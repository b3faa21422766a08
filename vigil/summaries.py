"""Alert summaries and notice texts for people, in zh-CN and English, from the `alerts` catalogue.

Detectors put the figures of a finding in its evidence, `evidence["params"]`, and keep `summary` as
the English engineering text for logs. This renders the figures through a template per violation
code (`vigil/data/i18n/<language>/alerts.json`), so the wording lives with the catalogue and both
languages say the same thing: `冷冻库温度 -8.8 ℃，高于 -18 ℃ 已持续 15 秒`.

A template is picked by the code and the finding's `variant` (which side of a limit, which kind of
camera tamper, a raise repeated after a dismissal), most specific first:

    summary.<CODE>.<variant>, summary.<CODE>, summary.any.<variant>, summary.any

A template whose placeholders the params cannot fill is passed over, so an alert stored before
params existed, or from a writer that sends none, still reads as the code's catalogue name
(`summary.any` is `{name}`). Parameter conventions (what detectors write):

- `metric`, `event`, `rule`: ids, shown by their catalogue names (`metric.<id>`, `event.<id>`,
  the violation catalogue's name for `rule`), else as the id itself;
- `value`, `limit`, `min`, `max`: numbers in `unit` (shown `-8.8 ℃`: one decimal, two for MPa
  and m/s, trailing zeros dropped);
- `<name>_s`: a duration in seconds, shown as `{name}` (`15 秒`, `15 min`); `held_s` also gives
  `{lasting}` (` 已持续 15 秒`, or nothing under a second);
- `score`, `risk`: a probability, shown as a percentage; other numbers one decimal; strings as they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from vigil.catalogue import catalogue as violations
from vigil.i18n import Language, catalogue

DEFAULT_TIMEZONE = "Asia/Shanghai"  # the default of Settings.timezone (VIGIL_TIMEZONE)
_DOMAIN = "alerts"
_NUMBERED = ("value", "limit", "min", "max")
_PERCENT = ("score", "risk")
# Units as people write them; a 0/1 flag has none. Units are data, not catalogue texts.
_UNITS: dict[Language, dict[str, str]] = {
    "zh-CN": {"°C": "℃", "0/1": ""},
    "en": {"°C": "°C", "0/1": ""},
}
# Pressures (1.25 MPa) and lift speeds (1.75 m/s) are rated to the hundredth; one decimal would
# misstate the limit itself.
_DECIMALS = {"MPa": 2, "m/s": 2}


def number(x: float, decimals: int = 1) -> str:
    """`x` rounded to `decimals`, trailing zeros dropped: -18.0 → "-18", -8.84 → "-8.8"."""
    shown = f"{x:.{decimals}f}".rstrip("0").rstrip(".") if decimals else f"{x:.0f}"
    return "0" if shown in ("-0", "") else shown


def quantity(x: float, unit: str, language: Language) -> str:
    shown = _UNITS[language].get(unit, unit)
    text = number(x, _DECIMALS.get(unit, 1))
    if not shown:
        return text
    return f"{text}{shown}" if shown.startswith("%") else f"{text} {shown}"


def duration(seconds: float, language: Language) -> str:
    """15 秒, 15 min, 1.5 h: seconds below two minutes, minutes below two hours, then hours."""
    texts = catalogue(language, _DOMAIN)
    if seconds < 120:
        return texts["duration.seconds"].format(n=number(seconds, 0))
    if seconds < 7200:
        return texts["duration.minutes"].format(n=number(seconds / 60, 0))
    return texts["duration.hours"].format(n=number(seconds / 3600, 1))


def local_time(ms: int, timezone: str = DEFAULT_TIMEZONE) -> str:
    """`YYYY-MM-DD HH:mm`, 24-hour, in `timezone` (Settings.timezone)."""
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def name(code: str, language: Language) -> str:
    """The code's name in the violation catalogue, else the code (one since removed)."""
    kind = violations().get(code)
    if kind is None:
        return code
    return kind.name_zh if language == "zh-CN" else kind.name_en


def _named(prefix: str, value: object, texts: Mapping[str, str]) -> str:
    return texts.get(f"{prefix}.{value}", str(value))


def _fields(code: str, params: Mapping[str, Any], language: Language) -> dict[str, str]:
    """The params as the templates' placeholders, each shown for people in `language`."""
    texts = catalogue(language, _DOMAIN)
    unit = params.get("unit")
    out: dict[str, str] = {"name": name(code, language)}
    for key, value in params.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            if not math.isfinite(value):
                continue
            if key in _NUMBERED:
                out[key] = quantity(value, unit if isinstance(unit, str) else "", language)
            elif key in _PERCENT:
                out[key] = f"{number(value * 100, 0)}%"
            elif key.endswith("_s"):
                out[key[:-2]] = duration(value, language)
            else:
                out[key] = number(value)
        elif isinstance(value, str):
            if key in ("metric", "event"):
                out[key] = _named(key, value, texts)
            elif key == "rule":
                out[key] = name(value, language)
            else:
                out[key] = value
    held = params.get("held_s")
    if isinstance(held, int | float) and not isinstance(held, bool) and math.isfinite(held):
        out["lasting"] = texts["phrase.lasting"].format(held=out["held"]) if held >= 1 else ""
    return out


def _candidates(code: str, variant: object) -> list[str]:
    if not isinstance(variant, str) or not variant:
        return [f"summary.{code}", "summary.any"]
    return [f"summary.{code}.{variant}", f"summary.{code}", f"summary.any.{variant}", "summary.any"]


def _fill(keys: list[str], texts: Mapping[str, str], fields: Mapping[str, str]) -> str | None:
    for key in keys:
        template = texts.get(key)
        if template is None:
            continue
        try:
            return template.format_map(fields)
        except (KeyError, IndexError, ValueError):
            continue  # a placeholder these params cannot fill: a less specific template
    return None


def render(code: str, evidence: Mapping[str, Any] | None, language: Language) -> str:
    """The alert's summary for people in `language`, from its code and `evidence["params"]`."""
    raw = (evidence or {}).get("params")
    params: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    texts = catalogue(language, _DOMAIN)
    fields = _fields(code, params, language)
    shown = _fill(_candidates(code, params.get("variant")), texts, fields)
    return shown if shown is not None else fields["name"]


def render_both(code: str, evidence: Mapping[str, Any] | None) -> dict[str, str]:
    """`summary_zh` and `summary_en`, as the API and the notices carry them."""
    return {"summary_zh": render(code, evidence, "zh-CN"), "summary_en": render(code, evidence, "en")}


def notice_text(
    kind: str,
    code: str,
    evidence: Mapping[str, Any] | None,
    language: Language,
    *,
    deadline_ms: int,
    reason: str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
) -> str:
    """The sentence an enterprise reads for a notice of `kind` (opened, rejected, escalated,
    closed, dismissed): what was found, what is owed and by when (`YYYY-MM-DD HH:mm`, local)."""
    texts = catalogue(language, _DOMAIN)
    text = texts[f"notice.{kind}"].format(
        name=name(code, language),
        summary=render(code, evidence, language),
        deadline=local_time(deadline_ms, timezone),
    )
    if reason:
        text += texts["notice.reason"].format(reason=reason)
    return text
