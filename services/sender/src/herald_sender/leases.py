"""The leases of the messages this sender holds, renewed while it holds them.

Taking a command's messages leases them for ``hold`` seconds (see
``herald_sender.repository.take_messages``); this keeper renews the lease of every
message still in hand every ``hold / 4`` seconds. A sender that dies stops renewing,
and the scheduler hands its messages to another command once the leases run out: a
message is sent again only after its sender has been gone for ``hold`` seconds.
"""

import asyncio
import contextlib
import uuid
from collections.abc import Iterable

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.faults import FAULTS, describe
from herald_sender.repository import renew_leases

DEFAULT_HOLD = 60.0

log = structlog.get_logger()


class LeaseKeeper:
    def __init__(self, engine: AsyncEngine, hold: float = DEFAULT_HOLD) -> None:
        self._engine = engine
        self.hold = hold
        self._held: dict[int, uuid.UUID | None] = {}

    def hold_messages(self, ids: Iterable[int], token: uuid.UUID | None) -> None:
        for message_id in ids:
            self._held[message_id] = token

    def release(self, ids: Iterable[int]) -> None:
        for message_id in ids:
            self._held.pop(message_id, None)

    async def renew(self) -> None:
        if not self._held:
            return
        try:
            async with self._engine.connect() as connection:
                await renew_leases(connection, list(self._held.items()), self.hold)
        except FAULTS as error:
            log.warning("leases.renew_failed", error=describe(error), held=len(self._held))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.hold / 4)
            await self.renew()
