"""How a request takes the rate limits' slots: its mailing's own first, then the global one
ahead of the queue; none for a message that may not send; and slots it could not use go
back to the next request."""

import time as monotonic
from collections.abc import Callable
from typing import cast

from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.domain import MessageStatus
from herald_sender.delivery import Courier, DeliveryPolicy
from herald_sender.mailing_watch import MailingWatch
from herald_sender.rate_limit import MailingRateLimits, SharedRateLimit
from herald_sender.repository import MailingTerms
from tests.unit.sender.fakes import FakeClock, FakeProbe, breaker, command, terms
from tests.unit.sender.fakes import message_state as state


class FakeRate:
    """A limit whose slots come at once; it notes what was asked of it."""

    def __init__(self, name: str, log: list[tuple[str, str]]) -> None:
        self.name = name
        self.log = log
        self.meanwhile: Callable[[], None] = lambda: None

    async def acquire(self, *, first: bool = False) -> float:
        self.log.append((self.name, "first" if first else "acquire"))
        self.meanwhile()
        return monotonic.monotonic()

    def stale(self, slot: float) -> bool:
        return False

    def give_back(self, slot: float) -> None:
        self.log.append((self.name, "give_back"))


class FakeMailingRates:
    def __init__(self, own: FakeRate) -> None:
        self.own = own

    def of(self, of_terms: MailingTerms) -> FakeRate | None:
        return self.own if of_terms.max_rate is not None else None


def courier(
    probe: FakeProbe,
    watch: MailingWatch,
    log: list[tuple[str, str]],
    global_rate: FakeRate | None = None,
) -> Courier:
    return Courier(
        probe,
        breaker(),
        DeliveryPolicy(concurrency=4),
        clock=probe.clock,
        sleep=probe.clock.sleep,
        watch=watch,
        rate=cast(SharedRateLimit, global_rate or FakeRate("global", log)),
        mailing_rates=cast(MailingRateLimits, FakeMailingRates(FakeRate("own", log))),
    )


def watching(offered: MailingTerms) -> MailingWatch:
    watch = MailingWatch(cast(AsyncEngine, None))
    watch.track(7)
    watch.offer(offered, monotonic.monotonic())
    return watch


async def test_a_throttled_mailing_takes_its_own_slot_then_goes_first_for_the_global() -> None:
    log: list[tuple[str, str]] = []
    probe = FakeProbe(FakeClock())
    report = await courier(probe, watching(terms(revision=2, max_rate=5.0)), log).deliver(
        command(1), [state(1)]
    )

    assert log == [("own", "acquire"), ("global", "first")]
    assert [outcome["status"] for outcome in report.outcomes] == [MessageStatus.sent]


async def test_a_mailing_without_its_own_rate_waits_its_turn_for_the_global() -> None:
    log: list[tuple[str, str]] = []
    probe = FakeProbe(FakeClock())
    await courier(probe, watching(terms(revision=2)), log).deliver(command(1), [state(1)])

    assert log == [("global", "acquire")]


async def test_a_paused_mailings_message_takes_no_slot() -> None:
    log: list[tuple[str, str]] = []
    probe = FakeProbe(FakeClock())
    report = await courier(
        probe, watching(terms(revision=2, paused=True, max_rate=5.0)), log
    ).deliver(command(1), [state(1)])

    assert log == []
    assert probe.calls == []
    assert [outcome["status"] for outcome in report.outcomes] == [MessageStatus.scheduled]


async def test_slots_of_a_request_that_may_no_longer_start_go_back() -> None:
    log: list[tuple[str, str]] = []
    probe = FakeProbe(FakeClock())
    watch = watching(terms(revision=2, max_rate=5.0))
    global_rate = FakeRate("global", log)
    sender = courier(probe, watch, log, global_rate)
    # The mailing is paused while the request waits for the global slot.
    global_rate.meanwhile = lambda: watch.offer(
        terms(revision=3, paused=True, max_rate=5.0), monotonic.monotonic()
    )

    await sender.deliver(command(1), [state(1)])

    assert probe.calls == []
    assert log == [
        ("own", "acquire"),
        ("global", "first"),
        ("own", "give_back"),
        ("global", "give_back"),
    ]
