"""The adaptive concurrency limit against the stub when its latency rises with its load:
the sender keeps far fewer requests in flight than its ceiling, the API answers far
faster than it would at the ceiling, and nothing times out or is sent twice."""

from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.contracts import MessageOutcome
from herald_common.domain import MessageStatus
from tests.integration.sender.conftest import Broker, SenderRunner, SettingsFactory, Stub
from tests.integration.sender.factories import create_mailing, create_messages, send_command

BASE_MS, LOAD_MS, CEILING = 20.0, 2.0, 200


async def test_the_limit_follows_an_api_that_slows_with_its_load(
    db: AsyncEngine,
    broker: Broker,
    stub: Stub,
    sender_settings: SettingsFactory,
    running_sender: SenderRunner,
) -> None:
    await stub.configure(latency_ms=BASE_MS, load_latency_ms=LOAD_MS)
    mailing_id = await create_mailing(db)
    ids = await create_messages(db, mailing_id, 3_000)
    settings = sender_settings(sender_concurrency=CEILING, sender_min_concurrency=4)

    async with running_sender(settings) as sender:
        for start in range(0, len(ids), 100):
            await broker.send(send_command(mailing_id, ids[start : start + 100]))
        outcomes: list[MessageOutcome] = []
        while len(outcomes) < len(ids):
            outcomes += (await broker.next_event(within=60)).outcomes
        limit = REGISTRY.get_sample_value("herald_sender_concurrency_limit")
        await sender.stopped()

    assert {(outcome.status, outcome.attempts) for outcome in outcomes} == {(MessageStatus.sent, 1)}
    assert (await stub.stats())["duplicate_ok_ids"] == 0
    at_the_ceiling = (BASE_MS + LOAD_MS * CEILING) / 1000  # 420 ms
    assert limit is not None
    assert limit < 0.4 * CEILING, limit
    received = sorted(await stub.received(), key=lambda request: request["received_at"])
    settled = sorted(r["answered_at"] - r["received_at"] for r in received[-1_000:])
    assert settled[len(settled) // 2] < 0.4 * at_the_ceiling
