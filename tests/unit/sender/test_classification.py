"""Every class of answer of the external API, judged alone and delivered end to end."""

from datetime import UTC, datetime, timedelta

import pytest

from herald_common.domain import MessageStatus
from herald_sender.classification import (
    ErrorClass,
    Verdict,
    excerpt,
    judge,
    judge_transport_error,
    parse_retry_after,
)
from herald_sender.probe_client import ProbeConnectionError, ProbeResponse, ProbeTimeout
from tests.unit.sender.fakes import OK_BODY, Answer, FakeClock, FakeProbe, command, courier
from tests.unit.sender.fakes import message_state as state


def answer(status: int, body: bytes = b"", retry_after: str | None = None) -> ProbeResponse:
    return ProbeResponse(status, body, 0.01, retry_after)


@pytest.mark.parametrize(
    ("response", "verdict", "error_class", "circuit_failure"),
    [
        (answer(200, OK_BODY), Verdict.sent, None, False),
        (answer(200, b'{"code":0}'), Verdict.sent, None, False),
        (
            answer(200, b'{"code": 1, "message": "no"}'),
            Verdict.transient,
            ErrorClass.api_code,
            False,
        ),
        (answer(200, b"not json"), Verdict.transient, ErrorClass.malformed_body, False),
        (answer(200, b"[]"), Verdict.transient, ErrorClass.malformed_body, False),
        (answer(200, b"{}"), Verdict.transient, ErrorClass.malformed_body, False),
        (answer(200, b'{"code": "zero"}'), Verdict.transient, ErrorClass.malformed_body, False),
        (answer(200, b'{"code": false}'), Verdict.transient, ErrorClass.malformed_body, False),
        (answer(200, b'{"code": 0.0}'), Verdict.transient, ErrorClass.malformed_body, False),
        (answer(200, b'{"code": 0, "mess'), Verdict.transient, ErrorClass.malformed_body, False),
        (answer(204), Verdict.transient, ErrorClass.unexpected_status, False),
        (answer(302), Verdict.transient, ErrorClass.unexpected_status, False),
        (answer(400, b"bad"), Verdict.permanent, ErrorClass.client_error, False),
        (answer(404), Verdict.permanent, ErrorClass.client_error, False),
        (answer(422), Verdict.permanent, ErrorClass.client_error, False),
        (answer(401), Verdict.unauthorized, ErrorClass.unauthorized, True),
        (answer(429, retry_after="1"), Verdict.transient, ErrorClass.rate_limited, True),
        (answer(500), Verdict.transient, ErrorClass.server_error, True),
        (answer(502), Verdict.transient, ErrorClass.server_error, True),
        (answer(503), Verdict.transient, ErrorClass.server_error, True),
    ],
)
def test_judge_answers(
    response: ProbeResponse,
    verdict: Verdict,
    error_class: ErrorClass | None,
    circuit_failure: bool,
) -> None:
    judgement = judge(response)
    assert judgement.verdict is verdict
    assert judgement.error_class is error_class
    assert judgement.circuit_failure is circuit_failure


def test_judge_transport_errors() -> None:
    timeout = judge_transport_error(ProbeTimeout("no answer within 10s", 10.0))
    reset = judge_transport_error(ProbeConnectionError("ServerDisconnectedError", 0.1))
    assert (timeout.verdict, timeout.error_class, timeout.circuit_failure) == (
        Verdict.transient,
        ErrorClass.timeout,
        True,
    )
    assert (reset.verdict, reset.error_class, reset.circuit_failure) == (
        Verdict.transient,
        ErrorClass.connection,
        True,
    )


def test_error_carries_status_and_a_short_excerpt_of_the_body() -> None:
    judgement = judge(answer(500, b"x" * 1000))
    assert judgement.error is not None
    assert judgement.error.startswith("HTTP 500: xxx")
    assert len(judgement.error) == len("HTTP 500: ") + 200


def test_excerpt_survives_broken_utf8() -> None:
    assert excerpt(b"\xff\xfeok") == "\ufffd\ufffdok"


def test_rate_limit_reports_retry_after() -> None:
    assert judge(answer(429, retry_after="3")).retry_after == 3.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("2", 2.0), ("0.5", 0.5), ("-4", 0.0), ("soon", None), ("inf", None)],
)
def test_parse_retry_after_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_parse_retry_after_http_date() -> None:
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    later = now + timedelta(seconds=30)
    header = later.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(header, now) == 30.0


# Delivered end to end through a fake transport: what a message ends as after one command.
@pytest.mark.parametrize(
    ("script", "status", "attempts", "error_class"),
    [
        ([answer(200, OK_BODY)], MessageStatus.sent, 1, None),
        ([answer(200, b'{"code": 1}')], MessageStatus.retrying, 3, ErrorClass.api_code),
        ([answer(200, b"not json")], MessageStatus.retrying, 3, ErrorClass.malformed_body),
        ([answer(200, b"[1]")], MessageStatus.retrying, 3, ErrorClass.malformed_body),
        ([answer(400)], MessageStatus.failed, 1, ErrorClass.client_error),
        ([answer(404)], MessageStatus.failed, 1, ErrorClass.client_error),
        ([answer(401)], MessageStatus.retrying, 0, ErrorClass.unauthorized),
        ([answer(429, retry_after="1")], MessageStatus.retrying, 3, ErrorClass.rate_limited),
        ([answer(500)], MessageStatus.retrying, 3, ErrorClass.server_error),
        ([answer(502)], MessageStatus.retrying, 3, ErrorClass.server_error),
        (
            [ProbeTimeout("no answer within 10s", 10.0)],
            MessageStatus.retrying,
            3,
            ErrorClass.timeout,
        ),
        (
            [ProbeConnectionError("ServerDisconnectedError", 0.01)],
            MessageStatus.retrying,
            3,
            ErrorClass.connection,
        ),
        ([answer(502), answer(200, OK_BODY)], MessageStatus.sent, 2, None),
    ],
)
async def test_delivery_outcome_per_answer(
    script: list[Answer], status: MessageStatus, attempts: int, error_class: ErrorClass | None
) -> None:
    probe = FakeProbe(FakeClock(), script=script)
    report = await courier(probe).deliver(command(1), [state(1)])
    [outcome] = report.outcomes
    assert outcome["status"] is status
    assert outcome["attempts"] == attempts
    assert outcome["error_class"] == error_class
    deferred = [ref for refs in report.deferred.values() for ref in refs]
    if status is MessageStatus.retrying:
        assert [(ref.id, ref.attempts) for ref in deferred] == [(1, attempts)]
    else:
        assert deferred == []
