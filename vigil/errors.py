"""One error hierarchy for every service.

Each error says whether retrying the same operation can succeed (`retriable`): a broker that is
briefly unreachable is retriable, a malformed payload never is. Services retry the first kind
with backoff and dead-letter the second.
"""

from __future__ import annotations


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
