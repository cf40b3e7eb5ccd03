"""A paused mailing in the sender: held messages send nothing and go back to the ledger as
``scheduled`` with their attempts, and a pause reaches messages already in hand within a
second, through the live terms."""

import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from herald_common.contracts import MessageOutcome
from herald_common.db.models import Message
from herald_common.domain import MessageStatus
from herald_scheduler.repository import ledger
from tests.integration.sender.conftest import Broker, SenderRunner, SettingsFactory, Stub
from tests.integration.sender.factories import (
    create_mailing,
    create_messages,
    pause_mailing,
    send_command,
)


async def dispatched(
    engine: AsyncEngine, message_ids: list[int], token: uuid.UUID, attempts: int
) -> None:
    """As the dispatcher leaves rows: queued under a command's token, with a lease."""
    async with engine.begin() as connection:
        await connection.execute(
            update(Message)
            .where(Message.id.in_(message_ids))
            .values(
                dispatch_token=token,
                attempts=attempts,
                lease_until=datetime.now(UTC) + timedelta(minutes=5),
            )
        )


async def test_held_messages_of_a_paused_mailing_go_back_to_scheduled_attempts_kept(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    sender_settings: SettingsFactory,
    running_sender: SenderRunner,
) -> None:
    mailing_id = await create_mailing(db, paused=True)
    ids = await create_messages(db, mailing_id, 3)
    token = uuid.uuid4()
    await dispatched(db, ids, token, attempts=2)
    command = send_command(mailing_id, ids, attempts=2).model_copy(update={"token": token})

    async with running_sender(sender_settings()):
        await broker.send(command)
        event = await broker.next_event()
        handed_back_at = datetime.now(UTC)

    assert await stub.received() == []
    assert sorted(outcome.message_id for outcome in event.outcomes) == ids
    for outcome in event.outcomes:
        assert outcome.status is MessageStatus.scheduled
        assert outcome.error_class == "mailing_paused"
        assert outcome.attempts == 2
        assert outcome.token == token
        assert outcome.next_attempt_at is not None
        assert outcome.next_attempt_at <= handed_back_at
    for tier in ("5s", "30s", "2m", "10m"):
        assert await broker.depth(f"herald.retry.{tier}") == 0
    # The scheduler applies it: back to scheduled, attempts and all, for the next dispatch.
    async with async_sessionmaker(db).begin() as session:
        moves = await ledger.apply_outcomes(session, event.outcomes)
    assert moves.count(MessageStatus.scheduled) == 3
    async with db.connect() as connection:
        rows = (
            await connection.execute(
                Message.__table__.select().where(Message.id.in_(ids)).order_by(Message.id)
            )
        ).all()
    assert {(row.status, row.attempts, row.dispatch_token, row.lease_until) for row in rows} == {
        ("scheduled", 2, None, None)
    }
    assert {row.due_at for row in rows} == {o.next_attempt_at for o in event.outcomes}


async def test_a_pause_reaches_messages_already_in_hand_within_a_second(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    sender_settings: SettingsFactory,
    running_sender: SenderRunner,
) -> None:
    await stub.configure(latency_ms=300)
    mailing_id = await create_mailing(db)
    ids = await create_messages(db, mailing_id, 20)

    async with running_sender(sender_settings(sender_concurrency=2)):
        await broker.send(send_command(mailing_id, ids))
        await stub.wait_for_requests(2)
        await pause_mailing(db, mailing_id)
        paused_at = time.time()
        event = await broker.next_event(within=20)

    received = await stub.received()
    assert received, "some messages were sent before the pause"
    assert max(request["received_at"] for request in received) < paused_at + 1.0
    by_status: dict[MessageStatus, list[MessageOutcome]] = {}
    for outcome in event.outcomes:
        by_status.setdefault(outcome.status, []).append(outcome)
    assert set(by_status) == {MessageStatus.sent, MessageStatus.scheduled}
    assert sorted(o.message_id for o in by_status[MessageStatus.sent]) == sorted(
        request["id"] for request in received
    )
    handed_back = by_status[MessageStatus.scheduled]
    assert len(handed_back) == 20 - len(received)
    assert {(o.error_class, o.attempts) for o in handed_back} == {("mailing_paused", 0)}
