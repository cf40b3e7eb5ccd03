"""The sender end to end: ledger, broker and the stub of the external API, all real."""

import asyncio
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.broker.topology import DEAD_LETTER_QUEUE, SEND_COMMANDS_QUEUE
from herald_common.contracts import SendMessages
from herald_common.domain import MessageStatus
from herald_common.send_window import SendWindow, first_due_at, zone
from tests.integration.sender.conftest import Broker, SenderRunner, SettingsFactory, Stub
from tests.integration.sender.factories import (
    create_mailing,
    create_messages,
    send_command,
    set_mailing_text,
)


def circuit_state() -> float | None:
    return REGISTRY.get_sample_value("herald_circuit_state")


async def test_happy_path_sends_each_message_once_and_acks(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    sender_settings: SettingsFactory,
    running_sender: SenderRunner,
) -> None:
    mailing_id = await create_mailing(db)
    ids = await create_messages(db, mailing_id, 5)
    async with running_sender(sender_settings()) as sender:
        await broker.send(send_command(mailing_id, ids))
        event = await broker.next_event()
        await sender.stopped()
    assert event.correlation_id == f"test-{mailing_id}"
    assert sorted(outcome.message_id for outcome in event.outcomes) == ids
    assert {(outcome.status, outcome.attempts) for outcome in event.outcomes} == {
        (MessageStatus.sent, 1)
    }
    received = await stub.received()
    assert sorted(request["id"] for request in received) == ids
    assert all(request["outcome"] == "ok" for request in received)
    assert all(isinstance(request["phone"], int) for request in received)
    stats = await stub.stats()
    assert (stats["distinct_ok_ids"], stats["duplicate_ok_ids"]) == (5, 0)
    # Acked: with the sender gone, nothing came back to the queue.
    assert await broker.depth(SEND_COMMANDS_QUEUE) == 0


async def test_text_changed_after_the_command_was_queued_applies(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    sender_settings: SettingsFactory,
    running_sender: SenderRunner,
) -> None:
    mailing_id = await create_mailing(db, text="Old text")
    ids = await create_messages(db, mailing_id, 2)
    await broker.send(send_command(mailing_id, ids))
    await set_mailing_text(db, mailing_id, "New text")
    async with running_sender(sender_settings()):
        await broker.next_event()
    assert {request["text"] for request in await stub.received()} == {"New text"}


async def test_cancelled_and_final_messages_are_skipped(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    sender_settings: SettingsFactory,
    running_sender: SenderRunner,
) -> None:
    deleted = await create_mailing(db, cancelled=True)
    deleted_ids = await create_messages(db, deleted, 2)
    mailing_id = await create_mailing(db)
    final_ids = []
    for number, status in enumerate(["sent", "failed", "expired", "cancelled"]):
        final_ids += await create_messages(
            db, mailing_id, 1, status=status, first_client_id=100 + number
        )
    [unsent] = await create_messages(db, mailing_id, 1)
    async with running_sender(sender_settings()) as sender:
        await broker.send(send_command(deleted, deleted_ids))
        await broker.send(send_command(mailing_id, [*final_ids, unsent]))
        event = await broker.next_event()
        await sender.stopped()
    # Skipped messages get no outcome; a command with nothing to send publishes no event.
    assert [(outcome.message_id, outcome.status) for outcome in event.outcomes] == [
        (unsent, MessageStatus.sent)
    ]
    assert [request["id"] for request in await stub.received()] == [unsent]
    assert await broker.depth(SEND_COMMANDS_QUEUE) == 0
    assert await broker.depth("herald.status.events") == 0


async def test_no_request_at_or_after_the_end_a_hanging_one_expires(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    sender_settings: SettingsFactory,
    running_sender: SenderRunner,
) -> None:
    await stub.configure(hang_rate=1.0, hang_seconds=10)
    end_at = datetime.now(UTC) + timedelta(seconds=1.5)
    mailing_id = await create_mailing(db, end_at=end_at)
    ids = await create_messages(db, mailing_id, 3)
    async with running_sender(sender_settings()):
        await broker.send(send_command(mailing_id, ids))
        event = await broker.next_event()
    assert {(outcome.status, outcome.attempts) for outcome in event.outcomes} == {
        (MessageStatus.expired, 1)
    }
    received = await stub.received()
    assert sorted(request["id"] for request in received) == ids
    assert all(request["received_at"] < end_at.timestamp() for request in received)
    # Abandoned in flight, and never tried again.
    assert all(outcome.at >= end_at - timedelta(milliseconds=100) for outcome in event.outcomes)
    assert (await stub.stats())["requests"] == 3


async def test_outside_window_goes_back_to_scheduled_due_at_the_next_opening(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    sender_settings: SettingsFactory,
    running_sender: SenderRunner,
) -> None:
    tokyo = zone("Asia/Tokyo")
    local_now = datetime.now(tokyo).replace(second=0, microsecond=0)
    window = SendWindow(
        (local_now + timedelta(hours=2)).time(), (local_now + timedelta(hours=4)).time()
    )
    end_at = datetime.now(UTC) + timedelta(days=2)
    mailing_id = await create_mailing(db, end_at=end_at, window=(window.start, window.end))
    ids = await create_messages(db, mailing_id, 2, timezone="Asia/Tokyo")
    async with running_sender(sender_settings()):
        await broker.send(send_command(mailing_id, ids, attempts=1))
        event = await broker.next_event()
    opening = first_due_at(datetime.now(UTC), end_at, tokyo, window)
    assert opening is not None
    for outcome in event.outcomes:
        # Handed back to the dispatcher: no delay-queue copy bounces while it waits.
        assert outcome.status is MessageStatus.scheduled
        assert outcome.error_class == "outside_window"
        assert outcome.next_attempt_at == opening
        assert outcome.attempts == 1  # a wait is not an attempt
    assert await broker.depth("herald.retry.10m") == 0
    assert await stub.received() == []


async def test_transient_failures_retry_then_defer_with_the_attempt_count(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    sender_settings: SettingsFactory,
    running_sender: SenderRunner,
) -> None:
    await stub.configure(error_rate=1.0)
    mailing_id = await create_mailing(db)
    [message_id] = await create_messages(db, mailing_id, 1)
    async with running_sender(sender_settings()):
        await broker.send(send_command(mailing_id, [message_id]))
        event = await broker.next_event()
        deferred = await broker.deferred("5s")
    [outcome] = event.outcomes
    assert outcome.status is MessageStatus.retrying
    assert outcome.attempts == 3
    assert outcome.error_class == "server_error"
    assert outcome.error is not None
    assert outcome.error.startswith("HTTP 50")
    assert outcome.next_attempt_at is not None
    assert outcome.next_attempt_at - outcome.at == timedelta(seconds=5)
    assert [(ref.id, ref.attempts) for ref in deferred.messages] == [(message_id, 3)]
    assert (await stub.stats())["by_outcome"]["error"] == 3


async def test_a_client_error_fails_the_message_at_once(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    sender_settings: SettingsFactory,
    running_sender: SenderRunner,
) -> None:
    mailing_id = await create_mailing(db)
    [message_id] = await create_messages(db, mailing_id, 1)
    # The stub answers 404 off its routes: here the path is /nowhere, "/send/<id>" the query.
    settings = sender_settings(probe_url=f"{stub.url}/nowhere?to=")
    async with running_sender(settings):
        await broker.send(send_command(mailing_id, [message_id]))
        event = await broker.next_event()
    [outcome] = event.outcomes
    assert (outcome.status, outcome.attempts, outcome.error_class) == (
        MessageStatus.failed,
        1,
        "client_error",
    )
    assert outcome.error is not None
    assert outcome.error.startswith("HTTP 404")
    assert await broker.depth("herald.retry.5s") == 0


async def test_unauthorized_trips_the_circuit_and_burns_no_message(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    sender_settings: SettingsFactory,
    running_sender: SenderRunner,
) -> None:
    mailing_id = await create_mailing(db)
    ids = await create_messages(db, mailing_id, 3)
    settings = sender_settings(
        probe_token="expired-token", sender_concurrency=1, sender_breaker_cooldown=30
    )
    async with running_sender(settings):
        await broker.send(send_command(mailing_id, ids, attempts=2))
        event = await broker.next_event()
        # Held back for the cool-down: the delay tier that fits 30 s.
        deferred = await broker.deferred("30s")
        assert circuit_state() == 2
        # Open: this sender takes no more commands.
        assert await broker.consumers(SEND_COMMANDS_QUEUE) == 0
    assert (await stub.stats())["by_outcome"]["unauthorized"] == 1
    assert {(outcome.status, outcome.attempts) for outcome in event.outcomes} == {
        (MessageStatus.retrying, 2)
    }
    assert sorted(str(outcome.error_class) for outcome in event.outcomes) == [
        "circuit_open",
        "circuit_open",
        "unauthorized",
    ]
    assert sorted((ref.id, ref.attempts) for ref in deferred.messages) == [(i, 2) for i in ids]


async def test_the_circuit_opens_on_an_outage_and_delivery_resumes_after(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    sender_settings: SettingsFactory,
    running_sender: SenderRunner,
) -> None:
    await stub.configure(outages=[[0, 1.5]])
    mailing_id = await create_mailing(db)
    ids = await create_messages(db, mailing_id, 10)
    settings = sender_settings(
        sender_concurrency=2,
        sender_inprocess_attempts=1,
        sender_breaker_window=6,
        sender_breaker_failure_rate=0.5,
        sender_breaker_cooldown=0.5,
    )
    async with running_sender(settings):
        await broker.send(send_command(mailing_id, ids))
        first = await broker.next_event()
        # Open, or already half-open after its short cool-down: not closed.
        assert circuit_state() != 0
        # Everything comes back through the 5 s delay queue and is sent after the outage.
        latest = {outcome.message_id: outcome for outcome in first.outcomes}
        assert sorted(latest) == ids
        while {outcome.status for outcome in latest.values()} != {MessageStatus.sent}:
            event = await broker.next_event(within=15)
            latest.update({outcome.message_id: outcome for outcome in event.outcomes})
        assert circuit_state() == 0
    held_back = [o for o in first.outcomes if o.error_class == "circuit_open"]
    failed_requests = [o for o in first.outcomes if o.error_class == "server_error"]
    assert len(failed_requests) >= 3
    assert len(held_back) >= 1
    assert all(outcome.attempts == 0 for outcome in held_back)
    stats = await stub.stats()
    # The open circuit spared the API: far fewer requests than messages times attempts.
    assert stats["by_outcome"]["outage"] <= 4
    assert (stats["distinct_ok_ids"], stats["duplicate_ok_ids"]) == (10, 0)


async def test_an_unparseable_command_goes_to_the_dead_letter_queue(
    db: AsyncEngine, broker: Broker, sender_settings: SettingsFactory, running_sender: SenderRunner
) -> None:
    async with running_sender(sender_settings()):
        await broker.send_raw(b'{"type": "send_messages", "messages": "nope"}')
        body = await broker.take(DEAD_LETTER_QUEUE)
    assert b"nope" in body
    assert await broker.depth(SEND_COMMANDS_QUEUE) == 0


async def test_an_unreachable_ledger_hands_the_command_back(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    sender_settings: SettingsFactory,
    running_sender: SenderRunner,
) -> None:
    mailing_id = await create_mailing(db)
    ids = await create_messages(db, mailing_id, 1)
    broken = sender_settings(
        database_url="postgresql+psycopg://postgres@127.0.0.1:5432/herald_no_such_database"
    )
    async with running_sender(broken) as sender:
        await broker.send(send_command(mailing_id, ids))
        # Long enough for a few rounds of "ledger unreachable, pause, hand back".
        await asyncio.sleep(1.5)
        await sender.stopped()
    assert await broker.depth(SEND_COMMANDS_QUEUE) == 1
    assert await broker.depth("herald.status.events") == 0
    assert await stub.received() == []
    # Back with a reachable ledger, the same command is delivered.
    async with running_sender(sender_settings()):
        event = await broker.next_event()
    assert [(o.message_id, o.status) for o in event.outcomes] == [(ids[0], MessageStatus.sent)]


async def test_a_sql_bug_parks_the_command_instead_of_retrying_it_forever(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    sender_settings: SettingsFactory,
    running_sender: SenderRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mailing_id = await create_mailing(db)
    ids = await create_messages(db, mailing_id, 2)
    reads = 0

    async def query_with_a_bug(connection: object, *args: object) -> None:
        nonlocal reads
        reads += 1
        raise ProgrammingError("SELECT ...", {}, Exception('column "x" does not exist'))

    monkeypatch.setattr("herald_sender.consumer.take_messages", query_with_a_bug)
    labels = {"reason": "bug"}
    before = REGISTRY.get_sample_value("herald_sender_commands_dead_lettered_total", labels)
    async with running_sender(sender_settings()):
        await broker.send(send_command(mailing_id, ids))
        body = await broker.take(DEAD_LETTER_QUEUE)
        await asyncio.sleep(0.5)  # time for a requeued copy to come round again

    assert [ref.id for ref in SendMessages.model_validate_json(body).messages] == ids
    assert reads == 1
    assert await broker.depth(SEND_COMMANDS_QUEUE) == 0
    assert await stub.received() == []
    after = REGISTRY.get_sample_value("herald_sender_commands_dead_lettered_total", labels)
    assert (after or 0) - (before or 0) == 1


def close_sender_connections(vhost: str) -> int:
    """Drop the sender's broker connections, as a broker restart or a network cut would."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    assert rabbitmqctl is not None
    listed = subprocess.run(
        [rabbitmqctl, "-q", "list_connections", "pid", "vhost", "client_properties"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    closed = 0
    for line in listed:
        pid, _, rest = line.partition("\t")
        if rest.startswith(f"{vhost}\t") and "herald-sender" in rest:
            subprocess.run(
                [rabbitmqctl, "-q", "close_connection", pid, "test: connection cut"],
                capture_output=True,
                check=True,
            )
            closed += 1
    return closed


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl")
async def test_a_broker_cut_after_sending_sends_nothing_twice(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    amqp_url: str,
    sender_settings: SettingsFactory,
    running_sender: SenderRunner,
) -> None:
    """The API accepted the messages, then the broker connection dropped before their status
    event was confirmed: the command comes back, and the sender reports what it knows
    instead of sending again."""
    await stub.configure(latency_ms=4000)
    mailing_id = await create_mailing(db)
    ids = await create_messages(db, mailing_id, 10)
    async with running_sender(sender_settings(sender_concurrency=10)):
        await broker.send(send_command(mailing_id, ids))
        await stub.wait_for_requests(10)
        vhost = urlsplit(amqp_url).path.lstrip("/") or "/"
        # In a thread: the sender runs on this event loop, which must not stall.
        assert await asyncio.to_thread(close_sender_connections, vhost) == 1
        latest: dict[int, MessageStatus] = {}
        while set(latest) != set(ids) or set(latest.values()) != {MessageStatus.sent}:
            event = await broker.next_event(within=30)
            latest.update({outcome.message_id: outcome.status for outcome in event.outcomes})
        # The command was acked in the end: nothing waits in the queue.
        deadline = asyncio.get_running_loop().time() + 10
        while await broker.depth(SEND_COMMANDS_QUEUE):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)
    stats = await stub.stats()
    assert stats["requests"] == 10
    assert (stats["distinct_ok_ids"], stats["duplicate_ok_ids"]) == (10, 0)
