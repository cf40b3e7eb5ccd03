"""The correlation id of the request being handled, for logs and outbox rows."""

import re
import uuid
from contextvars import ContextVar

HEADER = "X-Correlation-ID"
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")

_current: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def accept_or_generate(candidate: str | None) -> str:
    """The caller's id when it is a sane token (<= 64 chars), else a fresh uuid4 hex."""
    if candidate is not None and _SANE.fullmatch(candidate):
        return candidate
    return uuid.uuid4().hex


def current() -> str | None:
    return _current.get()


def bind(correlation_id: str) -> None:
    _current.set(correlation_id)
