"""The small language of conditions and limits in the device profiles.

    condition := all ("or" all)*
    all       := atom ("and" atom)*
    atom      := "(" condition ")" | METRIC op limit
    op        := "<" | "<=" | ">" | ">=" | "=" | "==" | "!="
    limit     := operand ["*" number] [("+" | "-") number]
    operand   := number | "attr:" NAME ["[" number "]"]

`attr:NAME[default]` is the device's registered attribute NAME (a number), else the default in
brackets, else the profile's `[attributes]` default. So `speed_mps > attr:rated_speed_mps[1.75] * 1.15`
judges each lift against its own rating. Durations (`for_s`, `window_s`, ...) are limits too.

A condition compiles, per device, to a Python function of the held metric values with every limit
already resolved to a constant: evaluating one is a few comparisons, nothing else. A metric the
device has not reported yet raises KeyError, which the engine takes as "cannot judge yet".
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Values = Mapping[str, float]
Condition = Callable[[Values], bool]


class ExpressionError(ValueError):
    """A condition or limit that does not parse; the message says where."""


_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<attr>attr:[A-Za-z_][A-Za-z0-9_]*)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><=|>=|==|!=|<|>|=)|(?P<punct>[()\[\]*+-]))"
)
_OPS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "=": "==", "==": "==", "!=": "!="}
_KEYWORDS = frozenset({"and", "or", "not"})


@dataclass(frozen=True, slots=True)
class Limit:
    """A number, or a device attribute with a default, times `mul`, plus `add`."""

    const: float = 0.0
    attr: str | None = None
    default: float | None = None  # the inline `[default]`; the profile's `[attributes]` come next
    mul: float = 1.0
    add: float = 0.0

    def resolve(self, attributes: Mapping[str, Any], defaults: Mapping[str, float]) -> float:
        if self.attr is None:
            base = self.const
        else:
            value = attributes.get(self.attr)
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                base = float(value)
            elif self.default is not None:
                base = self.default
            else:
                base = defaults[self.attr]  # the loader checked that a default exists
        return base * self.mul + self.add

    def text(self) -> str:
        base = f"{self.const:g}" if self.attr is None else f"attr:{self.attr}"
        if self.attr is not None and self.default is not None:
            base += f"[{self.default:g}]"
        if self.mul != 1.0:
            base += f" * {self.mul:g}"
        if self.add:
            base += f" {'+' if self.add > 0 else '-'} {abs(self.add):g}"
        return base


@dataclass(frozen=True, slots=True)
class Compare:
    metric: str
    op: str  # a Python comparison operator
    limit: Limit


@dataclass(frozen=True, slots=True)
class AllOf:
    parts: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Expr, ...]


Expr = Compare | AllOf | AnyOf


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                if text[pos:].strip() == "":
                    break
                raise ExpressionError(
                    f"unexpected {text[pos:].strip()[:12]!r} at column {pos + 1} in {text!r}"
                )
            kind = m.lastgroup
            assert kind is not None
            self.tokens.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, what: str) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise ExpressionError(f"expected {what} at the end of {self.text!r}")
        self.i += 1
        return token

    def fail(self, token: tuple[str, str, int], what: str) -> ExpressionError:
        return ExpressionError(f"expected {what}, got {token[1]!r} at column {token[2] + 1} in {self.text!r}")

    def accept(self, value: str) -> bool:
        token = self.peek()
        if token is not None and token[1] == value and token[0] in ("punct", "name", "op"):
            self.i += 1
            return True
        return False

    def done(self) -> None:
        token = self.peek()
        if token is not None:
            raise self.fail(token, "the end")

    # condition := all ("or" all)*
    def condition(self) -> Expr:
        parts = [self.all_of()]
        while self.accept("or"):
            parts.append(self.all_of())
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    def all_of(self) -> Expr:
        parts = [self.atom()]
        while self.accept("and"):
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def atom(self) -> Expr:
        if self.accept("("):
            inner = self.condition()
            token = self.take("')'")
            if token[1] != ")":
                raise self.fail(token, "')'")
            return inner
        token = self.take("a metric name")
        if token[0] != "name" or token[1] in _KEYWORDS:
            raise self.fail(token, "a metric name")
        op = self.take("a comparison")
        if op[0] != "op":
            raise self.fail(op, "a comparison (< <= > >= = !=)")
        return Compare(token[1], _OPS[op[1]], self.limit())

    def number(self) -> float:
        negative = self.accept("-")
        token = self.take("a number")
        if token[0] != "number":
            raise self.fail(token, "a number")
        return -float(token[1]) if negative else float(token[1])

    # limit := operand ["*" number] [("+" | "-") number]
    def limit(self) -> Limit:
        token = self.peek()
        if token is not None and token[0] == "attr":
            self.i += 1
            attr, default = token[1][5:], None
            if self.accept("["):
                default = self.number()
                close = self.take("']'")
                if close[1] != "]":
                    raise self.fail(close, "']'")
            const = 0.0
        else:
            attr, default, const = None, None, self.number()
        mul = self.number() if self.accept("*") else 1.0
        add = 0.0
        if self.accept("+"):
            add = self.number()
        elif self.accept("-"):
            add = -self.number()
        return Limit(const, attr, default, mul, add)


def parse_condition(text: str) -> Expr:
    parser = _Parser(text)
    if not parser.tokens:
        raise ExpressionError("empty condition")
    expr = parser.condition()
    parser.done()
    return expr


def parse_limit(value: object) -> Limit:
    """A number, or a limit expression such as `attr:door_open_s[600]`."""
    if isinstance(value, bool):
        raise ExpressionError(f"expected a number or an attr: limit, got {value!r}")
    if isinstance(value, int | float):
        return Limit(const=float(value))
    if not isinstance(value, str):
        raise ExpressionError(f"expected a number or an attr: limit, got {value!r}")
    parser = _Parser(value)
    if not parser.tokens:
        raise ExpressionError("empty limit")
    limit = parser.limit()
    parser.done()
    return limit


def metrics_of(expr: Expr) -> tuple[str, ...]:
    """The metrics a condition reads, in order of first mention."""
    if isinstance(expr, Compare):
        return (expr.metric,)
    seen: dict[str, None] = {}
    for part in expr.parts:
        seen.update(dict.fromkeys(metrics_of(part)))
    return tuple(seen)


def limits_of(expr: Expr) -> tuple[Limit, ...]:
    if isinstance(expr, Compare):
        return (expr.limit,)
    return tuple(limit for part in expr.parts for limit in limits_of(part))


def source(expr: Expr, resolve: Callable[[Limit], float]) -> str:
    """The condition as Python source over `v`, with every limit resolved to a constant."""
    if isinstance(expr, Compare):
        return f"v[{expr.metric!r}] {expr.op} {resolve(expr.limit)!r}"
    joiner = " and " if isinstance(expr, AllOf) else " or "
    return "(" + joiner.join(source(part, resolve) for part in expr.parts) + ")"


def text(expr: Expr, resolve: Callable[[Limit], float] | None = None, *, nested: bool = False) -> str:
    """The condition for people: with limits resolved (`temperature > -25`) or as written."""
    if isinstance(expr, Compare):
        op = "=" if expr.op == "==" else expr.op
        limit = f"{resolve(expr.limit):g}" if resolve is not None else expr.limit.text()
        return f"{expr.metric} {op} {limit}"
    joiner = " and " if isinstance(expr, AllOf) else " or "
    inner = joiner.join(text(part, resolve, nested=True) for part in expr.parts)
    return f"({inner})" if nested else inner


def compile_condition(expr: Expr, resolve: Callable[[Limit], float], *, negate: bool = False) -> Condition:
    """A function of the held values. The source is built only from parsed metric names (identifier
    characters, quoted with repr) and floats (repr round-trips), never from raw profile text."""
    body = source(expr, resolve)
    if negate:
        body = f"not {body}"
    fn: Condition = eval(f"lambda v: {body}", {"__builtins__": {}})  # noqa: S307
    return fn
