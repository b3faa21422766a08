"""One error hierarchy for every service.

Each error says whether retrying the same operation can succeed (`retriable`): a broker that is
briefly unreachable is retriable, a malformed payload never is. Services retry the first kind
with backoff and dead-letter the second.
"""

from __future__ import annotations

import reprlib

# Bounded in depth as well as length: plain repr() of a JSON document nested a thousand levels
# deep (orjson accepts 1024) raises RecursionError, which would turn a refusal into a crash.
_REPR = reprlib.Repr()  # keyword arguments only from Python 3.12
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist = 3, 6, 6
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 60, 60, 40


def show(value: object, limit: int = 60) -> str:
    """A bounded repr of untrusted input, for detail sentences and logs: never raises."""
    try:
        text = _REPR.repr(value)
    except Exception:  # a hostile __repr__ cannot come from JSON, but this must never fail
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


class VigilError(Exception):
    """Base of every error Vigil raises on purpose."""

    retriable: bool = False


class ConfigurationError(VigilError):
    """A setting is missing, malformed or unsafe (a default secret outside demo mode)."""


class InvalidMessage(VigilError):
    """An external input failed validation. `reason` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class UnknownSource(InvalidMessage):
    """The device or camera is not in the registry, or not under the enterprise it claims."""


class InfrastructureUnavailable(VigilError):
    """A broker or the database cannot be reached right now."""

    retriable = True


class IllegalTransition(VigilError):
    """An alert lifecycle action that the alert's current state does not allow."""


class NotFound(VigilError):
    """The thing asked for does not exist, or is not visible to the one asking (an enterprise asking
    about another's alert is told it does not exist, not that it is forbidden)."""


class InvalidRequest(VigilError):
    """A well-formed request whose content is refused (an empty reason, a deadline in the past)."""
