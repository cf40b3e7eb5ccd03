"""A held message is judged by its mailing's terms as they are when its request would start.

The watch stands for the database: whatever it last offered is what the courier sees.
"""

import dataclasses
import time as monotonic
from datetime import time, timedelta
from typing import cast

from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.domain import MessageStatus
from herald_sender.classification import ErrorClass
from herald_sender.delivery import Courier, DeliveryPolicy
from herald_sender.mailing_watch import MailingWatch
from herald_sender.probe_client import ProbeResponse
from herald_sender.repository import MailingTerms
from tests.unit.sender.fakes import START, FakeClock, FakeProbe, breaker, command, ok, terms
from tests.unit.sender.fakes import message_state as state


def watched(probe: FakeProbe, offered: MailingTerms | None) -> Courier:
    watch = MailingWatch(cast(AsyncEngine, None))
    watch.track(7)
    if offered is not None:
        watch.offer(offered, monotonic.monotonic())
    return Courier(
        probe,
        breaker(),
        DeliveryPolicy(concurrency=4),
        clock=probe.clock,
        sleep=probe.clock.sleep,
        watch=watch,
    )


def outcome_of(report_outcomes: list[dict[str, object]]) -> dict[str, object]:
    [outcome] = report_outcomes
    return outcome


async def test_an_end_moved_before_now_expires_a_held_message_unsent() -> None:
    probe = FakeProbe(FakeClock())
    courier = watched(probe, terms(revision=2, end_at=START))
    report = await courier.deliver(command(1), [state(1)])
    assert probe.calls == []
    outcome = outcome_of(report.outcomes)
    assert outcome["status"] is MessageStatus.expired
    assert outcome["error_class"] is ErrorClass.end_reached


async def test_an_end_moved_later_does_not_expire_by_the_old_end() -> None:
    probe = FakeProbe(FakeClock())
    courier = watched(probe, terms(revision=2, end_at=START + timedelta(hours=5)))
    report = await courier.deliver(command(1), [state(1, end_at=START)])
    assert [call.message_id for call in probe.calls] == [1]
    assert outcome_of(report.outcomes)["status"] is MessageStatus.sent


async def test_a_start_moved_later_hands_the_message_back_due_at_the_new_start() -> None:
    probe = FakeProbe(FakeClock())
    new_start = START + timedelta(hours=2)
    courier = watched(
        probe, terms(revision=2, start_at=new_start, end_at=START + timedelta(days=1))
    )
    report = await courier.deliver(command(1), [state(1)])
    assert probe.calls == []
    outcome = outcome_of(report.outcomes)
    assert outcome["status"] is MessageStatus.scheduled
    assert outcome["error_class"] is ErrorClass.before_start
    assert outcome["next_attempt_at"] == new_start
    assert report.deferred == {}


async def test_a_window_moved_away_from_now_hands_the_message_back() -> None:
    probe = FakeProbe(FakeClock())
    # START is 12:00 UTC; the new window opens at 15:00.
    courier = watched(
        probe, terms(revision=2, window=(time(15), time(16)), end_at=START + timedelta(days=1))
    )
    report = await courier.deliver(command(1), [state(1)])
    assert probe.calls == []
    outcome = outcome_of(report.outcomes)
    assert outcome["status"] is MessageStatus.scheduled
    assert outcome["next_attempt_at"] == START + timedelta(hours=3)


async def test_the_request_carries_the_current_text() -> None:
    probe = FakeProbe(FakeClock())
    courier = watched(probe, terms(revision=2, text="changed"))
    await courier.deliver(command(1), [state(1, text="original")])
    assert [call.text for call in probe.calls] == ["changed"]


async def test_a_client_out_of_the_new_filter_is_not_sent_and_gets_no_outcome() -> None:
    probe = FakeProbe(FakeClock())
    courier = watched(probe, terms(revision=2, operator_codes=["901"]))
    report = await courier.deliver(command(1), [state(1, operator_code="900")])
    assert probe.calls == []
    assert report.outcomes == []


async def test_a_deleted_mailing_is_not_sent() -> None:
    probe = FakeProbe(FakeClock())
    courier = watched(probe, terms(revision=2, cancelled=True))
    report = await courier.deliver(command(1), [state(1)])
    assert probe.calls == []
    assert report.outcomes == []


async def test_older_terms_do_not_replace_newer_ones() -> None:
    probe = FakeProbe(FakeClock())
    courier = watched(probe, terms(revision=1, text="old"))
    loaded = state(1, text="new")
    loaded = dataclasses.replace(loaded, terms=dataclasses.replace(loaded.terms, revision=3))
    await courier.deliver(command(1), [loaded])
    assert [call.text for call in probe.calls] == ["new"]


async def test_terms_not_read_lately_start_no_request() -> None:
    probe = FakeProbe(FakeClock())
    courier = watched(probe, None)
    report = await courier.deliver(command(1), [state(1)])
    assert probe.calls == []
    outcome = outcome_of(report.outcomes)
    assert outcome["status"] is MessageStatus.retrying
    assert outcome["error_class"] is ErrorClass.terms_unknown
    assert outcome["attempts"] == 0


async def test_a_paused_mailing_hands_a_held_message_back_attempts_kept() -> None:
    probe = FakeProbe(FakeClock())
    courier = watched(probe, terms(revision=2, paused=True))
    report = await courier.deliver(command(1, attempts=2), [state(1, attempts=2)])
    assert probe.calls == []
    outcome = outcome_of(report.outcomes)
    assert outcome["status"] is MessageStatus.scheduled
    assert outcome["error_class"] is ErrorClass.mailing_paused
    assert outcome["attempts"] == 2
    # Due again at once: nothing expires by a pause, the resume's reconcile judges anew.
    assert outcome["next_attempt_at"] == START
    assert report.deferred == {}


async def test_a_paused_message_outside_its_window_is_due_at_the_next_opening() -> None:
    probe = FakeProbe(FakeClock())
    # START is 12:00 UTC; the window opens at 15:00.
    courier = watched(
        probe,
        terms(
            revision=2, paused=True, window=(time(15), time(16)), end_at=START + timedelta(days=1)
        ),
    )
    report = await courier.deliver(command(1), [state(1)])
    outcome = outcome_of(report.outcomes)
    assert outcome["status"] is MessageStatus.scheduled
    assert outcome["next_attempt_at"] == START + timedelta(hours=3)


async def test_a_pause_is_no_reason_to_expire_but_the_end_still_is() -> None:
    probe = FakeProbe(FakeClock())
    courier = watched(probe, terms(revision=2, paused=True, end_at=START))
    report = await courier.deliver(command(1), [state(1)])
    assert probe.calls == []
    assert outcome_of(report.outcomes)["status"] is MessageStatus.expired


async def test_a_pause_between_two_attempts_starts_no_further_request() -> None:
    clock = FakeClock()
    probe = FakeProbe(clock, script=[ProbeResponse(503, b"busy", 0.01), ok()])
    watch = MailingWatch(cast(AsyncEngine, None))
    watch.track(7)
    watch.offer(terms(revision=1), monotonic.monotonic())

    async def paused_while_waiting(seconds: float) -> None:
        await clock.sleep(seconds)
        watch.offer(terms(revision=2, paused=True), monotonic.monotonic())

    courier = Courier(
        probe,
        breaker(),
        DeliveryPolicy(concurrency=4),
        clock=clock,
        sleep=paused_while_waiting,
        watch=watch,
    )
    report = await courier.deliver(command(1), [state(1)])

    assert [call.message_id for call in probe.calls] == [1]
    outcome = outcome_of(report.outcomes)
    assert outcome["status"] is MessageStatus.scheduled
    assert outcome["error_class"] is ErrorClass.mailing_paused
    assert outcome["attempts"] == 1
