"""Exceptions: one class per core error code, mapped by ONE table keyed by the code string.

``KahunaError.code`` is exactly the core client's ``Error::code()`` string
(core-client/src/error.rs); a code this table does not know becomes a plain
``KahunaError`` carrying that code.
"""

from __future__ import annotations

import builtins
from typing import Dict, Type


class KahunaError(Exception):
    """Base of every error a Kahuna call raises."""

    code: str = "UNKNOWN"
    retryable: bool = False

    def __init__(self, message: str, code: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.code, self.retryable))


class InvalidArgumentError(KahunaError, ValueError):
    """The request was refused as malformed (bad key, value too large, bad TTL, ...)."""


class FencedError(KahunaError):
    """A fenced write was refused: the lock is no longer held with that token."""


class CompactedError(KahunaError):
    """A read asked for a revision that is no longer retained."""


class FutureRevisionError(KahunaError):
    """A read asked for a revision newer than the latest one."""


class MembershipError(KahunaError):
    """A membership change was refused by Raft."""


class UnavailableError(KahunaError, ConnectionError):
    """No member could serve the request before its deadline; retrying later may work."""


class NotLeaderError(UnavailableError):
    """The member answered that it is not the leader (the core client normally follows it)."""


class NoLeaderError(UnavailableError):
    """The cluster has no leader right now."""


class KahunaTimeoutError(KahunaError, builtins.TimeoutError):
    """The call's deadline passed (a mutation may or may not have been applied)."""


class LockNotHeldError(KahunaError):
    """The lock this handle held is gone (lost, expired or released)."""


class ConfigError(KahunaError, ValueError):
    """The endpoint list or another client option is unusable."""


class UnimplementedError(KahunaError, NotImplementedError):
    """The server does not implement this call."""


class InternalError(KahunaError):
    """The server failed unexpectedly."""


class ResourceExhaustedError(KahunaError):
    """A limit was reached (for example too many live idempotency keys of a sequence)."""


class SequenceExhaustedError(KahunaError):
    """The sequence cannot hand out more identifiers."""


class UnauthenticatedError(KahunaError):
    """The cluster accepts no credential of this client (missing or unknown token)."""


class PermissionDeniedError(KahunaError):
    """The client's role does not allow this request, or not on this name."""


class AlreadyAppliedError(KahunaError):
    """A retried request had been applied by an earlier attempt, whose answer was too
    large for the server to keep: it was applied once; read the state to see its effect."""


#: The one table from a core error code to its exception class.
ERRORS: Dict[str, Type[KahunaError]] = {
    "INVALID_ARGUMENT": InvalidArgumentError,
    "FENCED": FencedError,
    "COMPACTED": CompactedError,
    "FUTURE_REVISION": FutureRevisionError,
    "MEMBERSHIP": MembershipError,
    "UNAVAILABLE": UnavailableError,
    "NOT_LEADER": NotLeaderError,
    "NO_LEADER": NoLeaderError,
    "TIMEOUT": KahunaTimeoutError,
    "LOCK_NOT_HELD": LockNotHeldError,
    "CONFIG": ConfigError,
    "UNIMPLEMENTED": UnimplementedError,
    "INTERNAL": InternalError,
    "RESOURCE_EXHAUSTED": ResourceExhaustedError,
    "SEQUENCE_EXHAUSTED": SequenceExhaustedError,
    "UNAUTHENTICATED": UnauthenticatedError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "ALREADY_APPLIED": AlreadyAppliedError,
}


def make_error(code: str, message: str, retryable: bool) -> KahunaError:
    """Builds the exception for a core error (called by the native module)."""
    cls = ERRORS.get(code, KahunaError)
    return cls(message, code, retryable)
