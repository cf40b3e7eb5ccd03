"""Stopping a sender with requests in flight loses nothing and sends nothing twice."""

import asyncio
import os
import signal
import tempfile
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from bench.system import BIN
from herald_common.broker.topology import SEND_COMMANDS_QUEUE
from herald_common.domain import MessageStatus
from tests.integration.sender.conftest import (
    STUB_TOKEN,
    Broker,
    SenderRunner,
    SettingsFactory,
    Stub,
)
from tests.integration.sender.factories import (
    create_mailing,
    create_messages,
    send_command,
    set_message_status,
)


async def test_stop_finishes_requests_in_flight_and_defers_the_rest(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    sender_settings: SettingsFactory,
    running_sender: SenderRunner,
) -> None:
    await stub.configure(latency_ms=800)
    mailing_id = await create_mailing(db)
    ids = await create_messages(db, mailing_id, 6)
    async with running_sender(sender_settings(sender_concurrency=2)) as sender:
        await broker.send(send_command(mailing_id, ids))
        await stub.wait_for_requests(2)
        took = await sender.stopped()
    assert took < 10
    event = await broker.next_event(within=1)
    sent = sorted(o.message_id for o in event.outcomes if o.status is MessageStatus.sent)
    deferred = [o for o in event.outcomes if o.status is MessageStatus.retrying]
    assert len(sent) == 2
    assert {(o.error_class, o.attempts) for o in deferred} == {("shutting_down", 0)}
    retry = await broker.deferred("5s")
    # Every message is accounted for: sent, or on its way back through a delay queue.
    assert sorted(sent + [ref.id for ref in retry.messages]) == ids
    assert sorted(request["id"] for request in await stub.received()) == sent
    assert await broker.depth(SEND_COMMANDS_QUEUE) == 0


async def test_a_command_unfinished_at_the_drain_deadline_is_redelivered_and_deduped(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    sender_settings: SettingsFactory,
    running_sender: SenderRunner,
) -> None:
    await stub.configure(hang_rate=1.0, hang_seconds=10)
    mailing_id = await create_mailing(db)
    ids = await create_messages(db, mailing_id, 2)
    settings = sender_settings(sender_concurrency=2, sender_drain_seconds=0.5)
    async with running_sender(settings) as sender:
        await broker.send(send_command(mailing_id, ids))
        await stub.wait_for_requests(2)
        took = await sender.stopped()
    assert took < 10
    # Nothing was published for it, and the command went back to the queue.
    assert await broker.depth("herald.status.events") == 0
    assert await broker.depth(SEND_COMMANDS_QUEUE) == 1
    # Meanwhile the ledger learnt that the first message was sent (say, by another sender).
    await set_message_status(db, ids[:1], "sent")
    await stub.reset()
    async with running_sender(sender_settings()):
        event = await broker.next_event()
    assert [(o.message_id, o.status) for o in event.outcomes] == [(ids[1], MessageStatus.sent)]
    assert [request["id"] for request in await stub.received()] == [ids[1]]


async def test_sigterm_stops_the_process_cleanly(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    sender_settings: SettingsFactory,
) -> None:
    await stub.configure(latency_ms=1000)
    mailing_id = await create_mailing(db)
    ids = await create_messages(db, mailing_id, 4)
    settings = sender_settings()
    env = {
        **os.environ,
        "HERALD_DATABASE_URL": settings.database_url,
        "HERALD_AMQP_URL": settings.amqp_url,
        "HERALD_PROBE_URL": settings.probe_url,
        "HERALD_PROBE_TOKEN": STUB_TOKEN,
        "HERALD_SENDER_CONCURRENCY": "2",
        "HERALD_SENDER_METRICS_PORT": "0",
        "HERALD_LOG_FORMAT": "json",
    }
    with tempfile.TemporaryFile() as logs:
        process = await asyncio.create_subprocess_exec(
            str(BIN / "herald-sender"), env=env, stdout=logs, stderr=logs
        )
        try:
            deadline = time.monotonic() + 20
            while await broker.consumers(SEND_COMMANDS_QUEUE) == 0:
                assert process.returncode is None, "herald-sender exited at start"
                assert time.monotonic() < deadline, "herald-sender did not start consuming"
                await asyncio.sleep(0.05)
            await broker.send(send_command(mailing_id, ids))
            await stub.wait_for_requests(2)
            process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            await asyncio.wait_for(process.wait(), timeout=10)
            took = time.monotonic() - started
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        logs.seek(0)
        output = logs.read().decode()
    assert took < 10
    assert process.returncode == 0, output
    assert '"event":"sender.stopped"' in output
    assert STUB_TOKEN not in output
    event = await broker.next_event(within=1)
    statuses = sorted(str(outcome.status) for outcome in event.outcomes)
    assert statuses == ["retrying", "retrying", "sent", "sent"]
    assert await broker.depth(SEND_COMMANDS_QUEUE) == 0
