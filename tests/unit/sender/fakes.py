"""Fakes for the sender's unit tests: a scripted external API and a clock tests move."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from herald_common.contracts import MessageRef, SendMessages
from herald_sender.circuit import CircuitBreaker
from herald_sender.delivery import Courier, DeliveryPolicy
from herald_sender.probe_client import ProbeResponse, ProbeTransportError
from herald_sender.repository import MailingTerms, MessageState

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
OK_BODY = b'{"code": 0, "message": "OK"}'

Answer = ProbeResponse | ProbeTransportError


def ok(latency: float = 0.01) -> ProbeResponse:
    return ProbeResponse(200, OK_BODY, latency)


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)


@dataclass
class Call:
    message_id: int
    phone: int
    text: str
    timeout: float
    at: datetime


@dataclass
class FakeProbe:
    """Answers from a script (the last answer repeats); the clock moves by each latency.

    ``pause`` holds each request for that many real seconds, so that requests overlap;
    ``peak`` is the most that were ever in flight at once.
    """

    clock: FakeClock
    script: list[Answer] = field(default_factory=lambda: [ok()])
    calls: list[Call] = field(default_factory=list)
    before_answer: Callable[[Call], None] | None = None
    pause: float = 0.0
    in_flight: int = 0
    peak: int = 0

    async def send(
        self,
        message_id: int,
        phone: int,
        text: str,
        timeout: float,  # noqa: ASYNC109 - applied by the transport, see ProbeClient
    ) -> ProbeResponse:
        call = Call(message_id, phone, text, timeout, self.clock())
        self.calls.append(call)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.before_answer is not None:
                self.before_answer(call)
            if self.pause:
                await asyncio.sleep(self.pause)
        finally:
            self.in_flight -= 1
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(answer, ProbeTransportError):
            self.clock.advance(min(answer.latency, timeout))
            raise answer
        self.clock.advance(answer.latency)
        return answer


def message_state(
    message_id: int = 1,
    *,
    status: str = "queued",
    attempts: int = 0,
    text: str = "hello",
    end_at: datetime | None = None,
    window: tuple[time, time] | None = None,
    timezone: str = "UTC",
    cancelled: bool = False,
    start_at: datetime | None = None,
    operator_code: str = "900",
) -> MessageState:
    return MessageState(
        id=message_id,
        status=status,
        phone=f"7900{message_id:07d}",
        timezone=timezone,
        attempts=attempts,
        client_id=message_id,
        operator_code=operator_code,
        tag=None,
        terms=terms(
            text=text, start_at=start_at, end_at=end_at, window=window, cancelled=cancelled
        ),
    )


def terms(
    *,
    revision: int = 1,
    text: str = "hello",
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    window: tuple[time, time] | None = None,
    cancelled: bool = False,
    paused: bool = False,
    operator_codes: list[str] | None = None,
    max_rate: float | None = None,
) -> MailingTerms:
    return MailingTerms(
        id=7,
        revision=revision,
        text=text,
        start_at=start_at or START - timedelta(hours=1),
        end_at=end_at or START + timedelta(hours=1),
        send_window_start=window[0] if window else None,
        send_window_end=window[1] if window else None,
        cancelled_at=START if cancelled else None,
        paused_at=START if paused else None,
        filter_operator_codes=operator_codes,
        filter_tags=None,
        max_rate=max_rate,
    )


def command(*message_ids: int, attempts: int = 0, mailing_id: int = 7) -> SendMessages:
    return SendMessages(
        mailing_id=mailing_id,
        messages=[MessageRef(id=message_id, attempts=attempts) for message_id in message_ids],
        correlation_id="corr-1",
    )


def breaker(opens_after: int = 10, cooldown: float = 5.0) -> CircuitBreaker:
    """A breaker that opens after ``opens_after`` consecutive failures (a window of only
    failures), which keeps the delivery tests' arithmetic simple."""
    return CircuitBreaker(
        window=opens_after,
        failure_rate=1.0,
        min_calls=opens_after,
        cooldown=cooldown,
        max_cooldown=60.0,
    )


def courier(
    probe: FakeProbe,
    *,
    circuit: CircuitBreaker | None = None,
    policy: DeliveryPolicy | None = None,
) -> Courier:
    return Courier(
        probe,
        circuit or breaker(),
        policy or DeliveryPolicy(concurrency=4),
        clock=probe.clock,
        sleep=probe.clock.sleep,
    )
