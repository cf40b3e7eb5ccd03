"""Request dependencies: the app's shared state, the session (one transaction), the caller.

The session dependency owns the transaction: it commits after the endpoint returns
and before the response is sent (``scope="function"``), or rolls back when the
endpoint raises. Services never commit.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_api.auth import service as auth_service
from herald_api.auth.service import Caller
from herald_api.errors import Unauthorized
from herald_api.middleware import API_KEY_NAME_STATE
from herald_api.outbox import writer
from herald_api.outbox.relay import OutboxRelay
from herald_api.settings import ApiSettings


@dataclass(frozen=True)
class ApiState:
    """What the lifespan builds once and every request shares."""

    settings: ApiSettings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    relay: OutboxRelay


async def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.herald
    return state


StateDep = Annotated[ApiState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessionmaker() as session:
        yield session
        await session.commit()
        if writer.wrote_events(session):
            state.relay.wake()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

CALLER_STATE = "caller"

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="hk_<prefix>_<secret>",
    description="An API key created with `herald api-key create --name NAME`.",
)


async def authenticate_request(request: Request, state: ApiState) -> Caller:
    """The caller named by the request's key, remembered on the request; 401 without one."""
    credentials = await bearer(request)
    if credentials is None:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    # A session of its own: a long request (a bulk import) must not hold this one open.
    async with state.sessionmaker() as session:
        caller = await auth_service.authenticate(session, credentials.credentials)
    setattr(request.state, API_KEY_NAME_STATE, caller.name)
    setattr(request.state, CALLER_STATE, caller)
    return caller


async def authenticate(
    request: Request,
    state: StateDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The request's caller. ``auth.route.AuthenticatedRoute`` declares this dependency
    (through ``bearer`` it documents the scheme in OpenAPI) and has found the caller before
    the body was read; on any other route it authenticates by itself."""
    caller: Caller | None = getattr(request.state, CALLER_STATE, None)
    if caller is None:
        caller = await authenticate_request(request, state)
    return caller


CallerDep = Annotated[Caller, Depends(authenticate)]
