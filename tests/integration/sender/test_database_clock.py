"""Senders judge ends and windows by the database's clock, whatever their own says."""

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.db.engine import create_engine
from herald_common.domain import MessageStatus
from herald_common.settings import HeraldSettings
from herald_sender.database_clock import DatabaseClock
from tests.integration.sender.conftest import Broker, SenderRunner, SettingsFactory, Stub
from tests.integration.sender.factories import create_mailing, create_messages, send_command

AHEAD = timedelta(hours=1)


def clock_ahead() -> datetime:
    return datetime.now(UTC) + AHEAD


async def test_the_offset_is_the_database_clock_minus_the_local_one(db: AsyncEngine) -> None:
    clock = DatabaseClock(db, local_clock=clock_ahead)

    offset = await clock.measure()

    # The database runs on this machine: the local clock is exactly an hour ahead of it.
    assert abs(offset + AHEAD) < timedelta(milliseconds=50)
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(milliseconds=50)
    gauge = REGISTRY.get_sample_value("herald_sender_clock_offset_seconds")
    assert gauge == pytest.approx(offset.total_seconds())


async def test_an_unreachable_database_keeps_the_last_offset() -> None:
    unreachable = create_engine(
        HeraldSettings(database_url="postgresql+psycopg://postgres@127.0.0.1:1/herald")
    )
    clock = DatabaseClock(unreachable, local_clock=clock_ahead)
    clock.offset = timedelta(seconds=-3)
    try:
        await clock.measure_or_keep()
    finally:
        await unreachable.dispose()
    assert clock.offset == timedelta(seconds=-3)


async def test_a_sender_whose_clock_runs_an_hour_ahead_still_sends_before_the_end(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    sender_settings: SettingsFactory,
    running_sender: SenderRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # By the database the mailing ends in 30 minutes; by this sender's own clock it ended
    # 30 minutes ago, and every message would expire unsent.
    mailing_id = await create_mailing(db, end_at=datetime.now(UTC) + timedelta(minutes=30))
    ids = await create_messages(db, mailing_id, 3)
    monkeypatch.setattr("herald_sender.database_clock._local_now", clock_ahead)
    monkeypatch.setattr("herald_sender.delivery._utc_now", clock_ahead)

    async with running_sender(sender_settings()):
        await broker.send(send_command(mailing_id, ids))
        event = await broker.next_event()

    assert {(o.message_id, o.status) for o in event.outcomes} == {
        (i, MessageStatus.sent) for i in ids
    }
    assert sorted(request["id"] for request in await stub.received()) == ids
