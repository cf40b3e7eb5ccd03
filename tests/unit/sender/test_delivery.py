"""The courier on a fake transport: ledger checks, end and window, retries, circuit, shutdown."""

import asyncio
from datetime import time, timedelta

from herald_common.contracts import MessagesProgressed
from herald_common.domain import MessageStatus
from herald_common.send_window import SendWindow, first_due_at, zone
from herald_sender.circuit import CircuitState
from herald_sender.classification import ErrorClass
from herald_sender.decisions import END_GUARD
from herald_sender.delivery import Courier, DeliveryPolicy
from herald_sender.probe_client import ProbeResponse, ProbeTimeout
from herald_sender.report import mask_phone
from tests.unit.sender.fakes import (
    START,
    Call,
    FakeClock,
    FakeProbe,
    breaker,
    command,
    courier,
    ok,
)
from tests.unit.sender.fakes import message_state as state

SERVER_ERROR = ProbeResponse(502, b"bad gateway", 0.01)
UNAUTHORIZED = ProbeResponse(401, b"", 0.01)


def statuses(outcomes: list[dict[str, object]]) -> dict[object, object]:
    return {outcome["message_id"]: outcome["status"] for outcome in outcomes}


async def test_sends_ledger_text_and_integer_phone_once() -> None:
    probe = FakeProbe(FakeClock())
    report = await courier(probe).deliver(command(1, 2), [state(1, text="new text"), state(2)])
    assert sorted((call.message_id, call.phone, call.text) for call in probe.calls) == [
        (1, 79000000001, "new text"),
        (2, 79000000002, "hello"),
    ]
    assert statuses(report.outcomes) == {1: MessageStatus.sent, 2: MessageStatus.sent}
    # `at` is when the answer came: the fake API takes 10 ms per request.
    assert all(outcome["at"] > START for outcome in report.outcomes)
    assert report.deferred == {}


async def test_skips_cancelled_and_final_messages_without_an_outcome() -> None:
    probe = FakeProbe(FakeClock())
    states = [
        state(1, cancelled=True),
        state(2, status="sent"),
        state(3, status="failed"),
        state(4, status="expired"),
        state(5, status="cancelled"),
        state(6, status="retrying"),
    ]
    report = await courier(probe).deliver(command(1, 2, 3, 4, 5, 6), states)
    assert [call.message_id for call in probe.calls] == [6]
    assert statuses(report.outcomes) == {6: MessageStatus.sent}


async def test_expired_without_a_request_once_the_end_has_passed() -> None:
    probe = FakeProbe(FakeClock())
    report = await courier(probe).deliver(command(1), [state(1, end_at=START)])
    assert probe.calls == []
    [outcome] = report.outcomes
    assert outcome["status"] is MessageStatus.expired
    assert outcome["error_class"] is ErrorClass.end_reached


async def test_outside_window_goes_back_to_scheduled_due_at_the_next_opening() -> None:
    probe = FakeProbe(FakeClock())
    end_at = START + timedelta(days=2)
    # 12:00 UTC is 15:00 in Moscow: outside 18:00-21:00.
    window = (time(18), time(21))
    report = await courier(probe).deliver(
        command(1, attempts=2),
        [state(1, window=window, timezone="Europe/Moscow", end_at=end_at)],
    )
    assert probe.calls == []
    [outcome] = report.outcomes
    opening = first_due_at(START, end_at, zone("Europe/Moscow"), SendWindow(*window))
    assert opening == START + timedelta(hours=3)
    # Handed back to the dispatcher, due at the opening: no delay-queue copy goes around
    # every 10 minutes while the window is closed.
    assert outcome["status"] is MessageStatus.scheduled
    assert outcome["error_class"] is ErrorClass.outside_window
    assert outcome["next_attempt_at"] == opening
    assert outcome["attempts"] == 2
    assert report.deferred == {}


async def test_outside_window_with_no_opening_before_the_end_expires() -> None:
    probe = FakeProbe(FakeClock())
    report = await courier(probe).deliver(
        command(1), [state(1, window=(time(18), time(21)), end_at=START + timedelta(hours=2))]
    )
    assert probe.calls == []
    assert report.outcomes[0]["status"] is MessageStatus.expired


async def test_request_timeout_never_reaches_past_the_end() -> None:
    clock = FakeClock()
    probe = FakeProbe(clock, script=[ProbeTimeout("no answer", 60.0)])
    circuit = breaker(opens_after=1)
    report = await courier(probe, circuit=circuit).deliver(
        command(1), [state(1, end_at=START + timedelta(seconds=3))]
    )
    [call] = probe.calls
    assert call.timeout == (timedelta(seconds=3) - END_GUARD).total_seconds()
    [outcome] = report.outcomes
    # Abandoned in flight at the end: expired, after one attempt, and no retry.
    assert outcome["status"] is MessageStatus.expired
    assert outcome["attempts"] == 1
    # A timeout cut short by the end is no sign of an outage.
    assert circuit.is_closed


async def test_transient_failures_retry_in_process_then_defer_with_attempts() -> None:
    clock = FakeClock()
    probe = FakeProbe(clock, script=[SERVER_ERROR])
    report = await courier(probe).deliver(command(1), [state(1)])
    assert len(probe.calls) == 3
    assert len(clock.sleeps) == 2
    assert 0.2 <= clock.sleeps[0] <= 0.4
    assert 0.4 <= clock.sleeps[1] <= 0.6
    [outcome] = report.outcomes
    assert outcome["status"] is MessageStatus.retrying
    assert outcome["attempts"] == 3
    assert outcome["error"] == "HTTP 502: bad gateway"
    [(tier, refs)] = report.deferred.items()
    assert tier.name == "5s"
    assert outcome["next_attempt_at"] == clock.now + timedelta(seconds=5)
    assert [(ref.id, ref.attempts) for ref in refs] == [(1, 3)]


async def test_retry_after_is_honoured_in_process() -> None:
    clock = FakeClock()
    probe = FakeProbe(clock, script=[ProbeResponse(429, b"", 0.01, "1.5"), ok()])
    report = await courier(probe).deliver(command(1), [state(1)])
    assert clock.sleeps[0] >= 1.5
    assert report.outcomes[0]["status"] is MessageStatus.sent
    assert report.outcomes[0]["attempts"] == 2


async def test_long_retry_after_goes_through_a_delay_queue_at_once() -> None:
    clock = FakeClock()
    probe = FakeProbe(clock, script=[ProbeResponse(429, b"", 0.01, "20")])
    report = await courier(probe).deliver(command(1), [state(1)])
    assert len(probe.calls) == 1
    assert clock.sleeps == []
    [(tier, _)] = report.deferred.items()
    assert tier.seconds >= 20


async def test_retries_exhausted_fails_the_message() -> None:
    probe = FakeProbe(FakeClock(), script=[SERVER_ERROR])
    policy = DeliveryPolicy(concurrency=4, max_attempts=12)
    report = await courier(probe, policy=policy).deliver(command(1, attempts=10), [state(1)])
    assert len(probe.calls) == 2
    [outcome] = report.outcomes
    assert outcome["status"] is MessageStatus.failed
    assert outcome["attempts"] == 12
    assert "retries exhausted" in str(outcome["error"])
    assert report.deferred == {}


async def test_ledger_attempts_count_when_larger_than_the_commands() -> None:
    probe = FakeProbe(FakeClock(), script=[SERVER_ERROR])
    report = await courier(probe).deliver(command(1, attempts=0), [state(1, attempts=11)])
    assert len(probe.calls) == 1
    assert report.outcomes[0]["status"] is MessageStatus.failed


async def test_a_deferral_landing_after_the_end_expires_instead() -> None:
    clock = FakeClock()
    probe = FakeProbe(clock, script=[SERVER_ERROR])
    report = await courier(probe).deliver(
        command(1), [state(1, end_at=START + timedelta(seconds=4))]
    )
    assert len(probe.calls) == 3
    [outcome] = report.outcomes
    assert outcome["status"] is MessageStatus.expired
    assert report.deferred == {}


async def test_no_in_process_retry_past_the_end() -> None:
    clock = FakeClock()
    probe = FakeProbe(clock, script=[SERVER_ERROR])
    report = await courier(probe).deliver(
        command(1), [state(1, end_at=START + timedelta(seconds=0.2))]
    )
    assert len(probe.calls) == 1
    assert report.outcomes[0]["status"] is MessageStatus.expired
    assert all(call.at < START + timedelta(seconds=0.2) for call in probe.calls)


async def test_permanent_rejection_fails_at_once() -> None:
    probe = FakeProbe(FakeClock(), script=[ProbeResponse(400, b"bad phone", 0.01)])
    report = await courier(probe).deliver(command(1), [state(1)])
    assert len(probe.calls) == 1
    assert report.outcomes[0]["status"] is MessageStatus.failed
    assert report.outcomes[0]["error"] == "HTTP 400: bad phone"


async def test_unauthorized_trips_the_circuit_and_burns_no_message() -> None:
    probe = FakeProbe(FakeClock(), script=[UNAUTHORIZED])
    circuit = breaker(opens_after=10)
    policy = DeliveryPolicy(concurrency=1)
    report = await courier(probe, circuit=circuit, policy=policy).deliver(
        command(1, 2, 3, attempts=4), [state(1), state(2), state(3)]
    )
    # Only the first request reached the API; the others were held back by the open circuit.
    assert len(probe.calls) == 1
    assert circuit.is_open
    assert set(statuses(report.outcomes).values()) == {MessageStatus.retrying}
    assert all(outcome["attempts"] == 4 for outcome in report.outcomes)
    classes = sorted(str(outcome["error_class"]) for outcome in report.outcomes)
    assert classes == ["circuit_open", "circuit_open", "unauthorized"]


async def test_an_outage_opens_the_circuit_and_holds_back_the_rest() -> None:
    probe = FakeProbe(FakeClock(), script=[SERVER_ERROR])
    circuit = breaker(opens_after=3)
    policy = DeliveryPolicy(concurrency=1, inprocess_attempts=1)
    ids = list(range(1, 7))
    report = await courier(probe, circuit=circuit, policy=policy).deliver(
        command(*ids), [state(i) for i in ids]
    )
    assert len(probe.calls) == 3
    assert circuit.is_open
    by_class: dict[object, list[object]] = {}
    for outcome in report.outcomes:
        by_class.setdefault(outcome["error_class"], []).append(outcome["attempts"])
    assert by_class == {ErrorClass.server_error: [1, 1, 1], ErrorClass.circuit_open: [0, 0, 0]}


async def test_half_open_sends_one_trial_at_a_time() -> None:
    circuit = breaker(opens_after=1)
    # Every trial fails: the circuit stays half-open, then opens again.
    probe = FakeProbe(FakeClock(), script=[SERVER_ERROR], pause=0.005)
    starts: list[tuple[CircuitState, int]] = []
    probe.before_answer = lambda _: starts.append((circuit.state, probe.in_flight))
    circuit.trip()
    circuit.half_open()
    policy = DeliveryPolicy(inprocess_attempts=1)
    report = await courier(probe, circuit=circuit, policy=policy).deliver(
        command(1, 2, 3), [state(1), state(2), state(3)]
    )
    # One probe, alone; it failed and reopened the circuit, which held back the others.
    assert starts == [(CircuitState.half_open, 1)]
    assert circuit.is_open
    assert sorted(str(o["error_class"]) for o in report.outcomes) == [
        "circuit_open",
        "circuit_open",
        "server_error",
    ]


async def test_a_successful_trial_closes_the_circuit_for_the_rest() -> None:
    circuit = breaker(opens_after=1)
    circuit.trip()
    circuit.half_open()
    probe = FakeProbe(FakeClock())
    report = await courier(probe, circuit=circuit).deliver(
        command(1, 2, 3), [state(1), state(2), state(3)]
    )
    assert circuit.is_closed
    assert set(statuses(report.outcomes).values()) == {MessageStatus.sent}


async def test_concurrency_limit_bounds_requests_in_flight() -> None:
    probe = FakeProbe(FakeClock(), pause=0.005)
    ids = list(range(1, 21))
    report = await courier(probe, policy=DeliveryPolicy(concurrency=3)).deliver(
        command(*ids), [state(i) for i in ids]
    )
    assert probe.peak == 3
    assert len(report.outcomes) == 20


async def test_no_slot_is_held_while_waiting_to_retry() -> None:
    clock = FakeClock()
    probe = FakeProbe(clock, script=[SERVER_ERROR, ok()])

    async def yielding_sleep(seconds: float) -> None:
        clock.sleeps.append(seconds)
        for _ in range(10):
            await asyncio.sleep(0)

    sender = Courier(
        probe, breaker(), DeliveryPolicy(concurrency=1), clock=clock, sleep=yielding_sleep
    )
    report = await sender.deliver(command(1, 2), [state(1), state(2)])
    # Message 1 failed and waited; message 2 used the only slot meanwhile.
    assert [call.message_id for call in probe.calls] == [1, 2, 1]
    assert set(statuses(report.outcomes).values()) == {MessageStatus.sent}


async def test_after_stop_no_request_starts_and_messages_are_deferred() -> None:
    probe = FakeProbe(FakeClock())
    sender = courier(probe)
    sender.stop_starting_requests()
    report = await sender.deliver(command(1, 2, attempts=1), [state(1), state(2)])
    assert probe.calls == []
    assert {outcome["error_class"] for outcome in report.outcomes} == {ErrorClass.shutting_down}
    assert all(outcome["attempts"] == 1 for outcome in report.outcomes)
    assert sorted(ref.id for refs in report.deferred.values() for ref in refs) == [1, 2]


async def test_a_request_started_before_stop_completes() -> None:
    clock = FakeClock()
    probe = FakeProbe(clock)
    sender = courier(probe, policy=DeliveryPolicy(concurrency=1))

    def stop_during_first(call: Call) -> None:
        sender.stop_starting_requests()

    probe.before_answer = stop_during_first
    report = await sender.deliver(command(1, 2), [state(1), state(2)])
    assert statuses(report.outcomes) == {1: MessageStatus.sent, 2: MessageStatus.retrying}


async def test_bad_time_zone_fails_only_that_message() -> None:
    probe = FakeProbe(FakeClock())
    report = await courier(probe).deliver(
        command(1, 2), [state(1, timezone="Mars/Olympus"), state(2)]
    )
    assert statuses(report.outcomes) == {1: MessageStatus.failed, 2: MessageStatus.sent}


async def test_report_builds_one_valid_status_event_and_deferred_commands() -> None:
    probe = FakeProbe(FakeClock(), script=[ok(), SERVER_ERROR])
    report = await courier(probe, policy=DeliveryPolicy(concurrency=1)).deliver(
        command(1, 2), [state(1), state(2)]
    )
    event = report.status_event("corr-1")
    assert event is not None
    parsed = MessagesProgressed.model_validate_json(event.model_dump_json())
    assert parsed.correlation_id == "corr-1"
    assert {(o.message_id, o.status) for o in parsed.outcomes} == {
        (1, MessageStatus.sent),
        (2, MessageStatus.retrying),
    }
    [(tier, deferred)] = report.deferred_commands(7, "corr-1", None)
    assert tier.name == "5s"
    assert deferred.mailing_id == 7
    assert [(ref.id, ref.attempts) for ref in deferred.messages] == [(2, 3)]


async def test_no_event_when_every_message_was_skipped() -> None:
    probe = FakeProbe(FakeClock())
    report = await courier(probe).deliver(command(1), [state(1, status="sent")])
    assert report.status_event("corr-1") is None
    assert report.deferred_commands(7, "corr-1", None) == []


def test_mask_phone_hides_the_middle() -> None:
    assert mask_phone("79001234567") == "7900*****67"
    assert "1234" not in mask_phone("79001234567")


async def test_the_request_timeout_follows_the_apis_answer_times() -> None:
    probe = FakeProbe(FakeClock(), script=[ok(latency=0.05)])
    sender = courier(probe, policy=DeliveryPolicy(request_timeout=10, min_request_timeout=2))
    ids = list(range(1, 102))
    await sender.deliver(command(*ids), [state(i) for i in ids])
    # The first requests wait up to the maximum; once the API has answered, the floor.
    assert probe.calls[0].timeout == 10
    assert probe.calls[-1].timeout == 2
