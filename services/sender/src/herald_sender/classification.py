"""Judging the external API's answers: sent, worth retrying, rejected for good, or bad token.

The rule is stated once, in the README's table (Delivery): answer, result, error class
and what it tells the circuit breaker; tests/unit/sender/test_classification_table.py
checks every row against :func:`judge`. For the breaker, a failure is a sign the API is
down or refusing service; any other answer shows it is up.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum, StrEnum

import orjson

from herald_sender.probe_client import ProbeConnectionError, ProbeResponse, ProbeTransportError

EXCERPT_CHARS = 200


class Verdict(Enum):
    sent = "sent"
    transient = "transient"
    permanent = "permanent"
    unauthorized = "unauthorized"
    # No request was started: the end was reached, the window closed, the circuit opened.
    blocked = "blocked"


class ErrorClass(StrEnum):
    """Why a message was not sent (yet); stored in ``messages.error_class``."""

    timeout = "timeout"
    connection = "connection"
    server_error = "server_error"
    rate_limited = "rate_limited"
    malformed_body = "malformed_body"
    api_code = "api_code"
    unexpected_status = "unexpected_status"
    client_error = "client_error"
    unauthorized = "unauthorized"
    # Not answers of the API: why a request was not started.
    outside_window = "outside_window"
    end_reached = "end_reached"
    circuit_open = "circuit_open"
    mailing_cancelled = "mailing_cancelled"
    # An operator paused the mailing: the message goes back to scheduled, as for a window.
    mailing_paused = "mailing_paused"
    before_start = "before_start"
    # The client left the mailing's filter, or was deleted: the scheduler cancels the row.
    client_unmatched = "client_unmatched"
    # The mailing's current terms could not be read lately: nothing starts on old ones.
    terms_unknown = "terms_unknown"
    # The command's broker channel closed: RabbitMQ hands the command out again.
    command_returned = "command_returned"
    shutting_down = "shutting_down"
    bad_timezone = "bad_timezone"


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    error_class: ErrorClass | None = None
    error: str | None = None
    # Seconds the API asked us to wait before the next request.
    retry_after: float | None = None
    # True when the answer says the API is down or refusing service.
    circuit_failure: bool = False


SENT = Judgement(Verdict.sent)


def judge(response: ProbeResponse) -> Judgement:
    status = response.status
    if status == 200:
        return _judge_ok_body(response.body)
    if status == 401:
        return Judgement(
            Verdict.unauthorized,
            ErrorClass.unauthorized,
            _http_error(response),
            circuit_failure=True,
        )
    if status == 429:
        return Judgement(
            Verdict.transient,
            ErrorClass.rate_limited,
            _http_error(response),
            retry_after=parse_retry_after(response.retry_after),
            circuit_failure=True,
        )
    if status >= 500:
        return Judgement(
            Verdict.transient,
            ErrorClass.server_error,
            _http_error(response),
            retry_after=parse_retry_after(response.retry_after),
            circuit_failure=True,
        )
    if 400 <= status < 500:
        return Judgement(Verdict.permanent, ErrorClass.client_error, _http_error(response))
    return Judgement(Verdict.transient, ErrorClass.unexpected_status, _http_error(response))


def judge_transport_error(error: ProbeTransportError) -> Judgement:
    error_class = (
        ErrorClass.connection if isinstance(error, ProbeConnectionError) else ErrorClass.timeout
    )
    return Judgement(
        Verdict.transient, error_class, error.detail[:EXCERPT_CHARS], circuit_failure=True
    )


def _judge_ok_body(body: bytes) -> Judgement:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _malformed(body)
    if type(answer) is not dict:
        return _malformed(body)
    code = answer.get("code")
    # ``type(...) is int`` on purpose: JSON true is a bool, and bool is an int to Python.
    if type(code) is not int:
        return _malformed(body)
    if code == 0:
        return SENT
    return Judgement(Verdict.transient, ErrorClass.api_code, f"HTTP 200: {excerpt(body)}")


def _malformed(body: bytes) -> Judgement:
    return Judgement(Verdict.transient, ErrorClass.malformed_body, f"HTTP 200: {excerpt(body)}")


def _http_error(response: ProbeResponse) -> str:
    return f"HTTP {response.status}: {excerpt(response.body)}"


def excerpt(body: bytes) -> str:
    """The start of a body, for logs and the ledger: at most 200 characters."""
    return body[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")[:EXCERPT_CHARS]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
