"""Delivering one send command's messages: the checks before each request, the request
(its rate slots, concurrency, breaker, metrics and log), and in-process retries; what
becomes of each message is herald_sender.decisions'.

Every message ends the command in one outcome: ``sent``, ``failed``, ``expired``,
``retrying`` with a delay queue to come back through, or ``scheduled`` again with a due
time (a window to wait for, a start moved later, a paused mailing), or none when the
scheduler cancels it (a cancelled or deleted mailing, a client out of the filter). The
mailing's live terms decide right before each request. The hot path makes no database
query and no pydantic model per message: outcomes are plain dicts, validated once per
command as one ``MessagesProgressed``.
"""

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from prometheus_client import Counter
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, wait_exponential_jitter

from herald_common.contracts import MessageRef, SendMessages
from herald_common.domain import FINAL_STATUSES, MessageStatus
from herald_common.metrics import (
    PROBE_LATENCY,
    PROBE_UNAUTHORIZED,
    SEND_ATTEMPTS,
    SENDER_INFLIGHT,
)
from herald_common.send_window import zone
from herald_sender import decisions
from herald_sender.circuit import CircuitBreaker
from herald_sender.classification import (
    ErrorClass,
    Judgement,
    Verdict,
    excerpt,
    judge,
    judge_transport_error,
)
from herald_sender.concurrency import ConcurrencyLimit
from herald_sender.decisions import BLOCKED, Decision, Finish, Reschedule, Retries
from herald_sender.mailing_watch import MailingWatch
from herald_sender.probe_client import ProbeClient, ProbeTimeout, ProbeTransportError
from herald_sender.rate_limit import MailingRateLimits, SharedRateLimit
from herald_sender.report import CommandReport, mask_phone, outcome
from herald_sender.repository import MailingTerms, MessageState
from herald_sender.request_timeout import RequestTimeout

log = structlog.get_logger()

_FINAL = frozenset(status.value for status in FINAL_STATUSES)


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    concurrency: int = 200
    # The adaptive concurrency limit's floor: see herald_sender.concurrency.
    min_concurrency: int = 8
    # The adaptive request timeout's bounds: see herald_sender.request_timeout.
    request_timeout: float = 10.0
    min_request_timeout: float = 2.0
    inprocess_attempts: int = 3
    max_attempts: int = 12
    backoff_initial: float = 0.2
    backoff_max: float = 2.0


@dataclass(slots=True)
class _Message:
    """One message on its way: what the ledger said, its mailing's terms as last read, and
    the HTTP attempts made so far."""

    state: MessageState
    mailing_id: int
    token: uuid.UUID | None
    attempts: int
    terms: MailingTerms
    timezone: ZoneInfo
    # Its log lines carry the message's, mailing's and client's ids, bound once.
    log: Any
    # True once the command is handed out again (its channel closed): start nothing more.
    returned: Callable[[], bool] | None = None
    answered_at: datetime | None = None

    @property
    def deadline(self) -> datetime:
        return decisions.deadline_of(self.terms)


@dataclass(frozen=True, slots=True)
class _RateSlots:
    """The slots of the rate limits one request holds: its mailing's own, the global one."""

    held: list[tuple[SharedRateLimit, float]]

    def late(self) -> bool:
        return any(limit.stale(slot) for limit, slot in self.held)

    def give_back(self) -> None:
        for limit, slot in self.held:
            limit.give_back(slot)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Courier:
    """Delivers the messages of send commands through a :class:`ProbeClient`.

    One instance serves every command of the process, so that its concurrency limit and
    the circuit breaker are shared.
    """

    def __init__(
        self,
        client: ProbeClient,
        breaker: CircuitBreaker,
        policy: DeliveryPolicy,
        *,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        watch: MailingWatch | None = None,
        rate: SharedRateLimit | None = None,
        mailing_rates: MailingRateLimits | None = None,
    ) -> None:
        self._client = client
        self._watch = watch
        self._rate = rate
        self._mailing_rates = mailing_rates
        self._breaker = breaker
        self._policy = policy
        self._retries = Retries(
            max_attempts=policy.max_attempts, inprocess_attempts=policy.inprocess_attempts
        )
        self._clock = clock or _utc_now
        self._sleep = sleep or self._pause
        # Held only around a request itself, never while waiting to retry.
        self.concurrency = ConcurrencyLimit(
            floor=policy.min_concurrency, ceiling=policy.concurrency
        )
        # While the circuit is half-open, requests go one at a time: each is a trial.
        self._trial = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._backoff = wait_exponential_jitter(
            multiplier=policy.backoff_initial,
            max=policy.backoff_max,
            jitter=policy.backoff_initial,
        )
        self._attempt_counters: dict[str, Counter] = {}
        self.timeout = RequestTimeout(
            floor=policy.min_request_timeout, ceiling=policy.request_timeout
        )

    def stop_starting_requests(self) -> None:
        """From now on no request starts: unsent messages are deferred (shutdown)."""
        self._stopping.set()

    async def deliver(
        self,
        command: SendMessages,
        states: list[MessageState],
        *,
        returned: Callable[[], bool] | None = None,
    ) -> CommandReport:
        """Deliver a command's messages; skipped ones (cancelled, already final) get no outcome,
        nor do those not started before ``returned()`` became true."""
        carried = {ref.id: ref.attempts for ref in command.messages}
        report = CommandReport()
        messages = []
        for state in states:
            if state.terms.cancelled_at is not None or state.status in _FINAL:
                continue
            message = self._prepare(command, state, carried.get(state.id, 0), report)
            if message is not None:
                message.returned = returned
                messages.append(message)
        await asyncio.gather(*(self._deliver_one(message, report) for message in messages))
        return report

    def _prepare(
        self, command: SendMessages, state: MessageState, carried: int, report: CommandReport
    ) -> _Message | None:
        mailing_id = command.mailing_id
        # The ledger's count may lag behind the command's (status events are applied
        # asynchronously), or the other way round after a redelivery: trust the larger.
        attempts = max(carried, state.attempts)
        try:
            timezone = zone(state.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            # The API validates zones; a bad one must not make the whole command a poison.
            error = f"unknown time zone {state.timezone!r}"
            report.outcomes.append(
                outcome(
                    state.id,
                    mailing_id,
                    MessageStatus.failed,
                    attempts,
                    self._clock(),
                    ErrorClass.bad_timezone,
                    error,
                    token=command.token,
                )
            )
            log.warning(
                "message.failed",
                message_id=state.id,
                mailing_id=mailing_id,
                client_id=state.client_id,
                error=error,
            )
            return None
        return _Message(
            state,
            mailing_id,
            command.token,
            attempts,
            terms=state.terms,
            timezone=timezone,
            log=log.bind(message_id=state.id, mailing_id=mailing_id, client_id=state.client_id),
        )

    async def _deliver_one(self, message: _Message, report: CommandReport) -> None:
        judgement = await self._attempt(message)
        if judgement.verdict is Verdict.transient and self._may_retry(message):
            judgement = await self._retry(message, judgement)
        self._conclude(message, judgement, report)

    def _may_retry(self, message: _Message) -> bool:
        return self._policy.inprocess_attempts > 1 and message.attempts < self._policy.max_attempts

    async def _retry(self, message: _Message, first: Judgement) -> Judgement:
        """Further attempts in-process, with tenacity wrapping the single outbound call.

        tenacity costs tens of microseconds per call, so the first attempt (the only one
        on the happy path) runs before it; tenacity takes over from its answer.
        """
        answers = [first]

        async def attempt() -> Judgement:
            return answers.pop() if answers else await self._attempt(message)

        def stop(retry_state: RetryCallState) -> bool:
            pause = retry_state.upcoming_sleep
            return (
                retry_state.attempt_number >= self._policy.inprocess_attempts
                or message.attempts >= self._policy.max_attempts
                # A longer Retry-After is honoured through a delay queue, not in a worker.
                or pause > self._policy.backoff_max
                or self._clock() + timedelta(seconds=pause) >= message.deadline
            )

        def before_sleep(retry_state: RetryCallState) -> None:
            pause = retry_state.upcoming_sleep
            message.log.info(
                "message.retry_scheduled",
                attempt=message.attempts,
                retry_in_ms=round(pause * 1000),
                next_attempt_at=(self._clock() + timedelta(seconds=pause)).isoformat(),
            )

        retrying = AsyncRetrying(
            stop=stop,
            wait=self._wait,
            retry=retry_if_result(_is_transient),
            retry_error_callback=_last_answer,
            before_sleep=before_sleep,
            sleep=self._sleep,
        )
        judgement: Judgement = await retrying(attempt)
        return judgement

    def _wait(self, retry_state: RetryCallState) -> float:
        backoff: float = self._backoff(retry_state)
        outcome = retry_state.outcome
        retry_after = outcome.result().retry_after if outcome is not None else None
        return max(backoff, retry_after or 0.0)

    async def _attempt(self, message: _Message) -> Judgement:
        # Checked before waiting for a slot too, so that an expired message does not wait.
        blocked = self._out_of_time(message, self._clock())
        if blocked is not None:
            return blocked
        if self._breaker.is_half_open:
            async with self._trial:
                if self._breaker.is_half_open:
                    return await self._request(message, trial=True)
        return await self._request(message, trial=False)

    def _out_of_time(self, message: _Message, now: datetime) -> Judgement | None:
        """Why the mailing's current terms let no request start now, or None."""
        if self._watch is not None:
            current = self._watch.current(message.mailing_id)
            if current is None:
                return BLOCKED[ErrorClass.terms_unknown]
            if current.revision >= message.terms.revision:
                message.terms = current
        return decisions.blocked_by_terms(
            message.terms,
            now,
            timezone=message.timezone,
            operator_code=message.state.operator_code,
            tag=message.state.tag,
            returned=message.returned,
        )

    def _blocked(self, message: _Message, now: datetime, *, trial: bool) -> Judgement | None:
        """Why no request may start for this message now, or None when one may."""
        blocked = self._out_of_time(message, now)
        if blocked is not None:
            return blocked
        if self._stopping.is_set():
            return BLOCKED[ErrorClass.shutting_down]
        if self._breaker.is_open or (self._breaker.is_half_open and not trial):
            return BLOCKED[ErrorClass.circuit_open]
        return None

    async def _take_slots(self, message: _Message) -> _RateSlots:
        """Wait for the mailing's own rate, if it has one, then for the global one."""
        held: list[tuple[SharedRateLimit, float]] = []
        own = self._mailing_rates.of(message.terms) if self._mailing_rates is not None else None
        if own is not None:
            held.append((own, await own.acquire()))
        if self._rate is not None:
            # Ahead of the other waiters: the mailing's slot goes stale if this waits its turn.
            held.append((self._rate, await self._rate.acquire(first=own is not None)))
        return _RateSlots(held)

    async def _request(self, message: _Message, *, trial: bool) -> Judgement:
        state = message.state
        while True:
            # The rate's slots first: a request waiting for the rate holds no worker.
            slots = await self._take_slots(message)
            async with self.concurrency:
                if slots.late():
                    slots.give_back()
                    continue  # it waited too long for a worker: new slots, not a burst
                # Checked again here, right before the request: waiting for a slot takes time.
                now = self._clock()
                blocked = self._blocked(message, now, trial=trial)
                if blocked is not None:
                    slots.give_back()  # to the next request, rather than lost
                    return blocked
                remaining = (message.deadline - now).total_seconds()
                budget = self.timeout.current
                timeout = min(budget, remaining)
                SENDER_INFLIGHT.inc()
                try:
                    response = await self._client.send(
                        state.id, int(state.phone), message.terms.text, timeout
                    )
                except ProbeTransportError as error:
                    latency = error.latency
                    judgement = judge_transport_error(error)
                    status: int | None = None
                    body: bytes | None = None
                    if isinstance(error, ProbeTimeout):
                        if timeout < budget:
                            # Cut short by the mailing's end: it says nothing about the API.
                            judgement = dataclasses.replace(judgement, circuit_failure=False)
                        else:
                            self.timeout.observe(timeout)
                            self.concurrency.timed_out(timeout)
                else:
                    latency = response.latency
                    self.timeout.observe(latency)
                    self.concurrency.observe(latency)
                    judgement = judge(response)
                    status, body = response.status, response.body
                finally:
                    SENDER_INFLIGHT.dec()
            break
        message.answered_at = self._clock()
        PROBE_LATENCY.observe(latency)
        self._count_attempt(judgement)
        if judgement.error_class is ErrorClass.rate_limited and self._rate is not None:
            await self._rate.throttled(judgement.retry_after)
        if judgement.verdict is Verdict.unauthorized:
            # The token is bad, not the message: the attempt is not counted against it.
            PROBE_UNAUTHORIZED.inc()
            message.log.error("probe.unauthorized")
            self._breaker.trip()
        else:
            message.attempts += 1
            if judgement.circuit_failure:
                self._breaker.record_failure()
            else:
                self._breaker.record_success()
        self._log_attempt(message, judgement, status, body, latency)
        return judgement

    def _count_attempt(self, judgement: Judgement) -> None:
        outcome = judgement.error_class.value if judgement.error_class else "sent"
        counter = self._attempt_counters.get(outcome)
        if counter is None:
            counter = self._attempt_counters[outcome] = SEND_ATTEMPTS.labels(outcome=outcome)
        counter.inc()

    def _log_attempt(
        self,
        message: _Message,
        judgement: Judgement,
        status: int | None,
        body: bytes | None,
        latency: float,
    ) -> None:
        # Every request and its answer, successes included, so that a search by message,
        # mailing or client id finds them all: one structlog call, nothing else per attempt.
        message.log.info(
            "message.attempt",
            phone=mask_phone(message.state.phone),
            attempt=message.attempts,
            status=status,
            body=excerpt(body) if body is not None else None,
            latency_ms=round(latency * 1000, 1),
            error_class=judgement.error_class,
            # An HTTP answer is told by its status and body; without one, by the error.
            error=judgement.error if status is None else None,
        )

    def _conclude(self, message: _Message, judgement: Judgement, report: CommandReport) -> None:
        now = self._clock()
        decision = decisions.conclude(
            judgement,
            message.terms,
            now,
            timezone=message.timezone,
            attempts=message.attempts,
            retries=self._retries,
            cooldown=self._breaker.cooldown,
            answered_at=message.answered_at,
        )
        if decision is not None:
            self._record(message, decision, now, report)

    def _record(
        self, message: _Message, decision: Decision, now: datetime, report: CommandReport
    ) -> None:
        """The decision as the message's outcome in the command's status event, and a log."""
        attempts = message.attempts
        next_at: datetime | None = None
        if isinstance(decision, Finish):
            status, at = decision.status, decision.at or now
            if status is not MessageStatus.sent:
                message.log.info(
                    f"message.{status.value}",
                    error_class=decision.reason,
                    error=decision.error,
                    attempt=attempts,
                )
        elif isinstance(decision, Reschedule):
            status, at, next_at = MessageStatus.scheduled, now, decision.due_at
            message.log.info(
                "message.rescheduled", error_class=decision.reason, due_at=next_at.isoformat()
            )
        else:
            status, at, next_at = MessageStatus.retrying, now, decision.next_attempt_at
            report.deferred.setdefault(decision.tier, []).append(
                MessageRef(id=message.state.id, attempts=attempts)
            )
            message.log.info(
                "message.deferred",
                error_class=decision.reason,
                attempt=attempts,
                tier=decision.tier.name,
                next_attempt_at=next_at.isoformat(),
            )
        report.outcomes.append(
            outcome(
                message.state.id,
                message.mailing_id,
                status,
                attempts,
                at,
                decision.reason,
                decision.error,
                next_at,
                token=message.token,
            )
        )

    async def _pause(self, seconds: float) -> None:
        """Wait before an in-process retry; a shutdown cuts the wait short."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


def _is_transient(judgement: Judgement) -> bool:
    return judgement.verdict is Verdict.transient


def _last_answer(retry_state: RetryCallState) -> Judgement:
    assert retry_state.outcome is not None  # tenacity calls this only after an attempt
    judgement: Judgement = retry_state.outcome.result()
    return judgement
