"""Fixtures for the scheduler's integration tests: a clean database, the test vhost's topology.

Every test here runs on an emptied database, and after each one the per-mailing counters
are compared with a recount of the ledger: every scenario proves they stay equal.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.broker.topology import (
    DEAD_LETTER_QUEUE,
    SCHEDULER_EVENTS_QUEUE,
    SEND_COMMANDS_QUEUE,
    STATUS_EVENTS_QUEUE,
    Topology,
    declare_topology,
)
from herald_common.contracts import SendMessages
from herald_common.domain import MessageStatus
from herald_common.settings import HeraldSettings
from herald_scheduler.reconciler import Reconciler

STATUSES = [s.value for s in MessageStatus]
_COUNTS = ", ".join(f"count(*) FILTER (WHERE status = '{s}') AS {s}" for s in STATUSES)
_RECOUNT = f"""
    SELECT mailing_id, {_COUNTS}, sum(attempts) AS attempts,
           min(sent_at) FILTER (WHERE status = 'sent') AS first_sent_at,
           max(sent_at) FILTER (WHERE status = 'sent') AS last_sent_at
    FROM messages GROUP BY mailing_id
"""  # noqa: S608 (built from the status names only)


async def recount_mismatches(engine: AsyncEngine) -> list[str]:
    """Where mailing_counters differ from a recount of the messages table."""
    async with engine.connect() as connection:
        counters = {
            row.mailing_id: row._mapping
            for row in await connection.execute(text("SELECT * FROM mailing_counters"))
        }
        recount = {row.mailing_id: row._mapping for row in await connection.execute(text(_RECOUNT))}
    problems = []
    for mailing_id, counted in recount.items():
        kept: Any = counters.get(mailing_id)
        if kept is None:
            problems.append(f"mailing {mailing_id}: no counters row")
            continue
        for column in [*STATUSES, "attempts", "first_sent_at", "last_sent_at"]:
            if kept[column] != counted[column]:
                problems.append(
                    f"mailing {mailing_id} {column}:"
                    f" counters {kept[column]}, ledger {counted[column]}"
                )
    for mailing_id, kept in counters.items():
        if mailing_id not in recount and any(kept[s] for s in STATUSES):
            problems.append(f"mailing {mailing_id}: counters without messages")
    return problems


@pytest.fixture(autouse=True)
async def ledger_db(clean_db: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """An empty database; afterwards, the counters must equal a recount of the ledger."""
    yield clean_db
    assert await recount_mismatches(clean_db) == []


@pytest.fixture
def reconciler(engine: AsyncEngine) -> Reconciler:
    return Reconciler(engine, chunk_size=1000)


@dataclass
class Broker:
    connection: AbstractRobustConnection
    channel: AbstractChannel
    topology: Topology

    async def take_commands(self, expected: int, within: float = 5.0) -> list[SendMessages]:
        """Read send commands (acking them) until ``expected`` messages arrived or time runs out."""
        queue = await self.channel.get_queue(SEND_COMMANDS_QUEUE)
        commands: list[SendMessages] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while sum(len(c.messages) for c in commands) < expected and loop.time() < deadline:
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.02)
                continue
            commands.append(SendMessages.model_validate_json(message.body))
        return commands

    async def queue_depth(self, name: str) -> int:
        # A robust channel caches declared queues: declare again to read the current count.
        queue = await self.channel.get_queue(name)
        declared = await queue.declare()
        return int(declared.message_count or 0)


@pytest.fixture
async def broker(settings: HeraldSettings) -> AsyncIterator[Broker]:
    """The topology in this run's vhost, with the scheduler's queues emptied."""
    connection = await aio_pika.connect_robust(settings.amqp_url)
    channel = await connection.channel()
    topology = await declare_topology(channel, settings.queue_type)
    for name in (
        SCHEDULER_EVENTS_QUEUE,
        SEND_COMMANDS_QUEUE,
        STATUS_EVENTS_QUEUE,
        DEAD_LETTER_QUEUE,
    ):
        await (await channel.get_queue(name)).purge()
    try:
        yield Broker(connection, channel, topology)
    finally:
        await connection.close()
