"""Idempotency keys: claim one for a request, replay or refuse a repeat, remember a response.

A request that sends ``Idempotency-Key`` first takes a transaction-scoped advisory lock on
(its API key, the key), without waiting: a repeat that arrives while the first is in
flight cannot take it and is a 409 at once. The holder then reads the key's row, in a
statement of its own so that it sees whatever the lock's previous holder committed: a row
with the same fingerprint is replayed, one with another is a 422, and none (or an expired
one) lets the request run, its 2xx response stored in the transaction that writes what it
created. That transaction's commit releases the lock, and by then the row is visible to
the next holder: two identical requests never both create.

Only a 2xx is stored. An error writes nothing (its transaction rolls back), so running a
retry again cannot create a twin; and a caller who fixes the cause (a 422's body, a 409's
conflicting client, a 5xx's outage) may retry with the same key.
"""

import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn, TypeVar

import structlog
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.errors import Conflict, FieldError, ValidationFailed
from herald_api.idempotency import repository
from herald_common.db.models import IdempotencyKey

log = structlog.get_logger()

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_MAX_LENGTH = 255
# 1 to 255 printable ASCII characters, not opening or closing with a space: HTTP servers
# strip those from a header's value, so the key they pass on would not be the one sent.
KEY_PATTERN = r"^[!-~]([ -~]*[!-~])?$"
# Headers of the first response that a replay repeats besides its content type; the others
# belong to each answer (its correlation id, its length).
REPLAYED_HEADERS = ("location",)
JSON = "application/json"
# Expired keys each new key deletes: more than one, so that the table shrinks back after a
# burst, and bounded, so that no request pays for a backlog.
EXPIRED_PER_SAVE = 100

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Claim:
    """A key the request in flight holds: whose it is, which, and how long it is kept."""

    api_key_id: int
    key: str
    ttl: timedelta


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: bytes
    headers: dict[str, str]


class Replay(Exception):
    """A repeat of a request that succeeded: answered with that request's response."""

    def __init__(self, response: StoredResponse) -> None:
        super().__init__(f"replay of a {response.status_code} response")
        self.response = response


class Fingerprint:
    """SHA-256 of what makes two requests the same: the method, path, query string, content
    type and body, byte for byte. The body is fed as it arrives, so none is kept."""

    def __init__(self, method: str, path: str, query: str, content_type: str) -> None:
        # One per line: a matched path, a raw query string and a header value hold no
        # newline, so two different requests cannot run together into the same text.
        head = f"{method}\n{path}\n{query}\n{content_type}\n"
        self._hash = hashlib.sha256(head.encode("utf-8", "surrogateescape"))

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def in_flight() -> Conflict:
    return Conflict(
        f"a request with this {KEY_HEADER} is still in progress; retry once it has finished",
        [FieldError(field=KEY_HEADER, message="in use by a request still in progress")],
        headers={"Retry-After": "1"},
    )


def reused() -> ValidationFailed:
    return ValidationFailed.on(
        KEY_HEADER,
        "was already used for a different request (method, path, query, content type or"
        " body); send a new key for a new request",
    )


async def claim(session: AsyncSession, held: Claim) -> IdempotencyKey | None:
    """Take the key for this request until its transaction ends (a 409 while another
    request holds it), and return what an earlier request stored under it, unexpired."""
    if not await repository.try_lock(session, held.api_key_id, held.key):
        log.info("idempotency.in_flight", idempotency_key=held.key)
        raise in_flight()
    # A statement of its own, after the lock: its snapshot includes the previous holder's
    # commit (the engine runs READ COMMITTED).
    return await repository.find(session, held.api_key_id, held.key, held.ttl)


def replay_or_refuse(found: IdempotencyKey, fingerprint: str) -> NoReturn:
    """The stored response again for the same request; a 422 for a different one."""
    if found.fingerprint != fingerprint:
        log.info("idempotency.reused", idempotency_key=found.key)
        raise reused()
    log.info("idempotency.replayed", idempotency_key=found.key, status=found.status_code)
    raise Replay(
        StoredResponse(
            status_code=found.status_code,
            body=found.response_body.encode(),
            headers=dict(found.response_headers),
        )
    )


async def remember(
    session: AsyncSession,
    held: Claim,
    *,
    fingerprint: str,
    status_code: int,
    body: bytes,
    headers: Mapping[str, str],
) -> None:
    """Store the response under the key, in the transaction that wrote what the request
    created; on the way, delete a bounded batch of expired keys."""
    expired = await repository.delete_expired(session, held.ttl, EXPIRED_PER_SAVE)
    if expired:
        log.info("idempotency.expired_deleted", count=expired)
    kept = {"content-type": JSON}
    kept.update({name: value for name in REPLAYED_HEADERS if (value := headers.get(name))})
    saved = await repository.save(
        session,
        api_key_id=held.api_key_id,
        key=held.key,
        fingerprint=fingerprint,
        status_code=status_code,
        body=body.decode(),
        headers=kept,
        ttl=held.ttl,
    )
    if not saved:
        # Only a request holding the lock writes the key, so this is a bug; refusing keeps
        # the entity from being created twice all the same.
        raise in_flight()


class Idempotency:
    """A JSON POST's Idempotency-Key, claimed before the endpoint runs (or none was sent)."""

    def __init__(
        self,
        session: AsyncSession,
        held: Claim | None,
        fingerprint: str,
        status_code: int,
        headers: Mapping[str, str],
    ) -> None:
        self._session = session
        self._held = held
        self._fingerprint = fingerprint
        self._status_code = status_code
        # The endpoint's response headers, read when the result is remembered.
        self._headers = headers

    async def remember(self, result: M) -> M:
        """Store ``result`` as the response a repeat gets; the endpoint returns it as usual.

        Serialised as FastAPI serialises the response model, so a replay is byte-identical.
        """
        if self._held is not None:
            await remember(
                self._session,
                self._held,
                fingerprint=self._fingerprint,
                status_code=self._status_code,
                body=result.model_dump_json().encode(),
                headers=self._headers,
            )
        return result


class ImportIdempotency:
    """A bulk import's Idempotency-Key: the body is fingerprinted while it streams, and the
    result is stored in the transaction of the import's last chunk."""

    def __init__(
        self,
        held: Claim | None,
        found: IdempotencyKey | None,
        fingerprint: Fingerprint,
        status_code: int,
    ) -> None:
        self._held = held
        self._found = found
        self._fingerprint = fingerprint
        self._status_code = status_code
        self._streamed = False

    async def fingerprinted(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The body's chunks, each added to the fingerprint on its way through."""
        async for chunk in chunks:
            self._fingerprint.update(chunk)
            yield chunk
        self._streamed = True

    async def replay_if_done(self, body: AsyncIterator[bytes]) -> None:
        """When an import already succeeded under the key: read the rest of the body for its
        fingerprint, then replay that import's result or refuse (422). Else nothing."""
        if self._found is None:
            return
        async for _ in body:
            pass
        replay_or_refuse(self._found, self._fingerprint.hexdigest())

    async def remember(self, session: AsyncSession, result: BaseModel) -> None:
        """The importer's last step, in its last transaction: store the result to replay."""
        if self._held is None:
            return
        assert self._streamed, "the importer finishes only once the body has ended"
        await remember(
            session,
            self._held,
            fingerprint=self._fingerprint.hexdigest(),
            status_code=self._status_code,
            body=result.model_dump_json().encode(),
            headers={},
        )
