"""The Idempotency-Key header as request dependencies, its OpenAPI entries, and replays.

``IdempotencyDep`` claims the key in the request's own transaction (``SessionDep``), which
commits what the endpoint created together with the stored response. ``ImportIdempotencyDep``
holds the key's lock in a transaction of its own for as long as the import runs, since
the import commits chunk by chunk in transactions of their own.
"""

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request, Response

from herald_api.deps import CallerDep, SessionDep, StateDep
from herald_api.errors import ERROR_DESCRIPTIONS, error_responses
from herald_api.idempotency import service
from herald_api.idempotency.service import (
    KEY_HEADER,
    KEY_MAX_LENGTH,
    KEY_PATTERN,
    REPLAYED_HEADER,
    Claim,
    Fingerprint,
    Idempotency,
    ImportIdempotency,
    Replay,
)
from herald_api.params import example

KEY_DESCRIPTION = (
    "Makes a retry of this request safe: 1 to 255 printable ASCII characters (inner spaces"
    " allowed), e.g. a UUID drawn once per request. A repeat with the same key and the same"
    " request (method, path, query, content type and body, byte for byte) gets the first"
    " response again, with `Idempotent-Replayed: true`, and creates nothing. Only a 2xx"
    " response is kept: after an error the key may be used again. The same key with a"
    " different request is a 422; a repeat while the first is still in progress is a 409."
    " Keys are kept per API key for HERALD_IDEMPOTENCY_KEY_TTL (24 h by default); after that"
    " a key is as good as new."
)
_EXAMPLE_KEY = "5f0c6d1e-8a47-4f0e-9a51-2b8e7c3d9f10"

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=KEY_HEADER,
        description=KEY_DESCRIPTION,
        max_length=KEY_MAX_LENGTH,
        pattern=KEY_PATTERN,
        examples=[_EXAMPLE_KEY],
        openapi_examples=example(_EXAMPLE_KEY),
    ),
]

_NOTES = {
    409: f"A request with the same `{KEY_HEADER}` is still in progress (retry after it).",
    422: f"A malformed `{KEY_HEADER}`, or one already used for a different request.",
}


def idempotent_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``error_responses`` for an operation that takes Idempotency-Key: its 409 and 422
    also name the key's cases, and its success documents the replay header."""
    responses = error_responses(*sorted({*statuses, *_NOTES}))
    for status, note in _NOTES.items():
        described = ERROR_DESCRIPTIONS[status] if status in statuses else ""
        responses[status]["description"] = f"{described} {note}".strip()
    return responses


def replay_header_doc() -> dict[str, Any]:
    """The OpenAPI ``headers`` entry of a success that may be a replay."""
    return {
        REPLAYED_HEADER: {
            "description": f"`true` when this is the stored response to an earlier request"
            f" with the same `{KEY_HEADER}`; absent otherwise.",
            "schema": {"type": "string", "enum": ["true"]},
        }
    }


def _fingerprint(request: Request) -> Fingerprint:
    return Fingerprint(
        request.method,
        request.url.path,
        request.url.query,
        request.headers.get("content-type", ""),
    )


def _route_status(request: Request) -> int:
    status_code = getattr(request.scope.get("route"), "status_code", None)
    return status_code if isinstance(status_code, int) else 200


async def idempotency(
    request: Request,
    state: StateDep,
    session: SessionDep,
    caller: CallerDep,
    response: Response,
    key: IdempotencyKeyHeader = None,
) -> Idempotency:
    """Claim the key in the request's transaction; a repeat is replayed or refused here,
    before the endpoint runs."""
    if key is None:
        return Idempotency(session, None, "", _route_status(request), response.headers)
    fingerprint = _fingerprint(request)
    # FastAPI has read the (size-limited) JSON body already; this is its cached copy.
    fingerprint.update(await request.body())
    held = Claim(caller.key_id, key, timedelta(seconds=state.settings.idempotency_key_ttl))
    found = await service.claim(session, held)
    if found is not None:
        service.replay_or_refuse(found, fingerprint.hexdigest())
    return Idempotency(
        session, held, fingerprint.hexdigest(), _route_status(request), response.headers
    )


async def import_idempotency(
    request: Request,
    state: StateDep,
    caller: CallerDep,
    key: IdempotencyKeyHeader = None,
) -> AsyncIterator[ImportIdempotency]:
    """Claim the key in a transaction held open until the import has returned: it keeps
    the key's lock while the import's chunks commit in transactions of their own."""
    fingerprint = _fingerprint(request)
    if key is None:
        yield ImportIdempotency(None, None, fingerprint, _route_status(request))
        return
    held = Claim(caller.key_id, key, timedelta(seconds=state.settings.idempotency_key_ttl))
    # Closing the session rolls its transaction back (it wrote nothing), freeing the lock
    # before the response is sent (scope="function").
    async with state.sessionmaker() as session:
        found = await service.claim(session, held)
        yield ImportIdempotency(held, found, fingerprint, _route_status(request))


IdempotencyDep = Annotated[Idempotency, Depends(idempotency)]
ImportIdempotencyDep = Annotated[ImportIdempotency, Depends(import_idempotency, scope="function")]


async def _replay(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Replay)
    stored = exc.response
    return Response(
        content=stored.body,
        status_code=stored.status_code,
        headers={**stored.headers, REPLAYED_HEADER: "true"},
    )


def install_replays(app: FastAPI) -> None:
    """Answer a repeat with its stored response (raised as ``Replay`` by the dependencies)."""
    app.add_exception_handler(Replay, _replay)
