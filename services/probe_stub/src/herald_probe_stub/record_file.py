"""The ``--record`` file: one NDJSON line per answered request, appended in batches.

Lines wait in memory for at most a batch or a flush interval, then go to the operating
system in one write, so a killed stub loses only its last fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import BinaryIO, Final

FLUSH_INTERVAL_SECONDS: Final = 0.2
BATCH_LINES: Final = 1000


class RecordFile:
    __slots__ = ("_file", "_flusher", "_lines", "path")

    def __init__(self, path: Path, file: BinaryIO) -> None:
        self.path = path
        self._file = file
        self._lines: list[bytes] = []
        self._flusher: asyncio.Task[None] | None = None

    @classmethod
    def open(cls, path: Path) -> RecordFile:
        """Open ``path`` for appending; raises OSError when it cannot be written."""
        return cls(path, path.open("ab"))

    def append(self, line: bytes) -> None:
        self._lines.append(line)
        if len(self._lines) >= BATCH_LINES:
            self.flush()

    def flush(self) -> None:
        # A hanging request cancelled at shutdown may finish after the file closed.
        if self._lines and not self._file.closed:
            lines, self._lines = self._lines, []
            self._file.write(b"".join(lines))
            self._file.flush()

    def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_periodically())

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        self.flush()
        self._file.close()

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_SECONDS)
            self.flush()
