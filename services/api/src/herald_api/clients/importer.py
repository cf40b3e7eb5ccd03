"""Bulk import of clients from a CSV or NDJSON body, streamed and loaded chunk by chunk.

The body is read as it arrives and split into lines; each line is validated with the
same model as ``POST /clients``. Valid rows are loaded every ``CHUNK_ROWS`` rows: COPY
into a staging table, then one ``INSERT ... SELECT ... ON CONFLICT`` that reports which
rows were inserted and which updated. Each chunk commits with its outbox events and
client journal entries, so memory stays flat whatever the file size. A CSV field
holding a newline is not supported: every line is one record.
"""

import asyncio
import csv
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.clients import csv_header, repository
from herald_api.clients.repository import StagedRow
from herald_api.clients.schemas import ClientCreate, ImportResult, ImportRowError
from herald_api.errors import ValidationFailed, validation_fields
from herald_api.outbox import writer
from herald_common.contracts import ClientsChanged, EventType

log = structlog.get_logger()

CHUNK_ROWS = 5000
MAX_ERRORS = 1000
MAX_LINE_BYTES = 16_384
_OPTIONAL_COLUMNS = ("operator_code", "tag")

NumberedLine = tuple[int, bytes | None]  # None: the line was longer than MAX_LINE_BYTES
# Called with the result in the import's last transaction, before it commits.
OnFinish = Callable[[AsyncSession, ImportResult], Awaitable[None]]


class ImportFormat(StrEnum):
    csv = "text/csv"
    ndjson = "application/x-ndjson"


class RowRejected(Exception):
    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class Tally:
    received: int = 0
    created: int = 0
    updated: int = 0
    duplicates: int = 0
    invalid: int = 0
    errors: list[ImportRowError] = field(default_factory=list)
    errors_truncated: bool = False

    def reject(self, line: int, field_name: str | None, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(ImportRowError(line=line, field=field_name, message=message))
        else:
            self.errors_truncated = True

    def result(self) -> ImportResult:
        return ImportResult(
            received=self.received,
            created=self.created,
            updated=self.updated,
            duplicates=self.duplicates,
            invalid=self.invalid,
            errors=sorted(self.errors, key=lambda error: error.line),
            errors_truncated=self.errors_truncated,
        )


async def numbered_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[NumberedLine]]:
    """The body's lines with 1-based numbers, a batch per body chunk, newlines stripped."""
    number = 0
    pending = b""
    overlong = False
    async for received in chunks:
        chunk = received
        batch: list[NumberedLine] = []
        if overlong:
            cut = chunk.find(b"\n")
            if cut < 0:
                continue
            number += 1
            batch.append((number, None))
            overlong, chunk = False, chunk[cut + 1 :]
        parts = (pending + chunk).split(b"\n")
        pending = parts.pop()
        for part in parts:
            number += 1
            batch.append((number, part if len(part) <= MAX_LINE_BYTES else None))
        if len(pending) > MAX_LINE_BYTES:
            overlong, pending = True, b""
        if batch:
            yield batch
    if overlong or pending:
        yield [(number + 1, None if overlong else pending)]


class CsvRows:
    """CSV with a header row naming phone and timezone, and optionally operator_code, tag."""

    def __init__(self) -> None:
        self.columns: list[str] | None = None

    @property
    def expects_header(self) -> bool:
        return self.columns is None

    def read_header(self, line: bytes | None) -> None:
        if line is None:
            raise ValidationFailed.on("header", "the header line is too long")
        try:
            text = line.decode()
        except UnicodeDecodeError:
            raise ValidationFailed.on("header", "the header line is not valid UTF-8") from None
        if not csv_header.is_header(text):
            raise ValidationFailed.on(
                "header",
                "the first line must name the columns phone, timezone and optionally"
                f" operator_code, tag, each once (found: {text[:200]})",
            )
        self.columns = csv_header.column_names(text)

    def parse(self, line: bytes) -> dict[str, Any]:
        assert self.columns is not None, "read_header comes first"
        values = _csv_fields(_text(line))
        if len(values) != len(self.columns):
            raise RowRejected(None, f"expected {len(self.columns)} fields, found {len(values)}")
        row: dict[str, Any] = {}
        for name, value in zip(self.columns, values, strict=True):
            stripped = value.strip()
            # An empty optional column means "not given": the defaults apply.
            if stripped or name not in _OPTIONAL_COLUMNS:
                row[name] = stripped
        return row

    def finish(self) -> None:
        if self.columns is None:
            raise ValidationFailed.on("header", "the CSV body is empty: a header row is required")


class NdjsonRows:
    """One JSON object per line, with the same fields as ``POST /clients``."""

    expects_header = False

    def read_header(self, line: bytes | None) -> None:
        raise AssertionError("NDJSON has no header")

    def parse(self, line: bytes) -> dict[str, Any]:
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise RowRejected(None, f"not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise RowRejected(None, "must be a JSON object")
        return value

    def finish(self) -> None:
        pass


def _text(line: bytes) -> str:
    try:
        return line.decode()
    except UnicodeDecodeError:
        raise RowRejected(None, "not valid UTF-8") from None


def _csv_fields(text: str) -> list[str]:
    if '"' not in text:
        return text.split(",")
    try:
        return next(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise RowRejected(None, f"malformed CSV ({exc})") from None


class ClientImport:
    """One import: feeds lines in, loads chunks, and tallies what happened."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        rows: CsvRows | NdjsonRows,
        upsert: bool,
        on_commit: Callable[[], None],
        on_finish: OnFinish | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._rows = rows
        self._upsert = upsert
        self._on_commit = on_commit
        self._on_finish = on_finish
        self._pending: list[StagedRow] = []
        self._loading: asyncio.Task[None] | None = None
        self._finished = False  # on_finish has run, in the last chunk's transaction
        self.tally = Tally()

    async def run(self, chunks: AsyncIterator[bytes]) -> ImportResult:
        try:
            async for batch in numbered_lines(chunks):
                for number, line in batch:
                    self._feed(number, line)
                    if len(self._pending) >= CHUNK_ROWS:
                        await self._start_load()
            self._rows.finish()
            await self._start_load(last=True)
            await self._finish_load()
            if self._on_finish is not None and not self._finished:
                # No rows were left for a last chunk: a transaction for the result alone.
                async with self._sessionmaker() as session, session.begin():
                    await self._on_finish(session, self.tally.result())
        finally:
            await self._settle()
        return self.tally.result()

    async def _start_load(self, *, last: bool = False) -> None:
        """Write the pending rows in the background once the previous chunk has committed.

        Chunks still commit one after another, but the next one is parsed while
        PostgreSQL writes this one: on a small machine that nearly halves the time.
        """
        await self._finish_load()
        if self._pending:
            rows, self._pending = self._pending, []
            self._loading = asyncio.create_task(self._load(rows, last=last))

    async def _finish_load(self) -> None:
        if self._loading is not None:
            loading, self._loading = self._loading, None
            await loading

    async def _settle(self) -> None:
        """After a failure mid-body, let the chunk in flight commit rather than cut it off."""
        if self._loading is not None:
            loading, self._loading = self._loading, None
            await asyncio.wait([loading])
            if not loading.cancelled() and loading.exception() is not None:
                log.warning("clients.import_chunk_failed", error=str(loading.exception()))

    def _feed(self, number: int, line: bytes | None) -> None:
        if line is not None:
            line = line.removesuffix(b"\r")
            if not line.strip():
                return
        if self._rows.expects_header:
            self._rows.read_header(line)
            return
        tally = self.tally
        tally.received += 1
        try:
            if line is None:
                raise RowRejected(None, f"the line is longer than {MAX_LINE_BYTES} bytes")
            client = ClientCreate.model_validate(self._rows.parse(line))
        except RowRejected as exc:
            tally.invalid += 1
            tally.reject(number, exc.field, exc.message)
            return
        except ValidationError as exc:
            tally.invalid += 1
            for error in validation_fields(exc.errors(include_url=False, include_input=False)):
                tally.reject(number, error.field, error.message)
            return
        self._pending.append(
            (number, client.phone, client.resolved_operator_code, client.tag, client.timezone)
        )

    async def _load(self, staged: list[StagedRow], *, last: bool = False) -> None:
        """Write rows in one transaction with their outbox events (and, for the last
        chunk, with what ``on_finish`` writes)."""
        rows = self._unique_phones(staged)
        async with self._sessionmaker() as session, session.begin():
            await repository.stage(session, rows)
            written = await repository.merge_staged(session, upsert=self._upsert)
            created = [client_id for client_id, _, inserted in written if inserted]
            updated = [client_id for client_id, _, inserted in written if not inserted]
            # One set-based statement for the chunk's journal entries (see service.record_change).
            await repository.journal(session, [client_id for client_id, _, _ in written])
            await writer.record(session, _events(created, updated))
            # Tallied before the commit, so that the last chunk's on_finish sees it all; a
            # failed commit fails the import, whose tally is then never answered.
            self.tally.created += len(created)
            self.tally.updated += len(updated)
            if not self._upsert:
                loaded = {phone for _, phone, _ in written}
                for row in rows:
                    if row[1] not in loaded:
                        self._duplicate(row[0], "a client with this phone already exists")
            if last and self._on_finish is not None:
                await self._on_finish(session, self.tally.result())
                self._finished = True
        if written:
            self._on_commit()

    def _unique_phones(self, rows: Sequence[StagedRow]) -> list[StagedRow]:
        """One row per phone: the first one, or with upsert the last one (later lines win)."""
        by_phone: dict[str, StagedRow] = {}
        for row in rows:
            earlier = by_phone.get(row[1])
            if earlier is None:
                by_phone[row[1]] = row
            elif self._upsert:
                self._duplicate(earlier[0], f"superseded by line {row[0]} with the same phone")
                by_phone[row[1]] = row
            else:
                self._duplicate(row[0], f"the same phone as line {earlier[0]}")
        return list(by_phone.values())

    def _duplicate(self, line: int, message: str) -> None:
        self.tally.duplicates += 1
        self.tally.reject(line, "phone", message)


def _events(created: list[int], updated: list[int]) -> list[ClientsChanged]:
    events = []
    if created:
        events.append(writer.clients_changed(EventType.client_created, created))
    if updated:
        events.append(writer.clients_changed(EventType.client_updated, updated))
    return events


async def import_clients(
    chunks: AsyncIterator[bytes],
    *,
    import_format: ImportFormat,
    upsert: bool,
    sessionmaker: async_sessionmaker[AsyncSession],
    on_commit: Callable[[], None],
    on_finish: OnFinish | None = None,
) -> ImportResult:
    """Import the body's clients; ``on_finish`` writes in the transaction of the last
    chunk (of its own when no row was left for one), so that it commits with it."""
    rows: CsvRows | NdjsonRows = CsvRows() if import_format is ImportFormat.csv else NdjsonRows()
    job = ClientImport(
        sessionmaker, rows=rows, upsert=upsert, on_commit=on_commit, on_finish=on_finish
    )
    return await job.run(chunks)
