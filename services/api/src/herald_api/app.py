"""The FastAPI application: routers, error handlers, middleware, and the relay's lifespan."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import Depends, FastAPI

from herald_api import health
from herald_api.admin import IMPORT_PATH as ADMIN_IMPORT_PATH
from herald_api.admin import mount_admin
from herald_api.allowed_methods import AllowedMethodsMiddleware
from herald_api.clients.endpoints import router as clients_router
from herald_api.deps import ApiState
from herald_api.docs import install_docs
from herald_api.error_handlers import install_error_handlers
from herald_api.errors import error_responses
from herald_api.idempotency.dependencies import install_replays
from herald_api.mailings.endpoints import router as mailings_router
from herald_api.middleware import BodyLimitMiddleware, RequestContextMiddleware, bind_path_ids
from herald_api.outbox.relay import OutboxRelay
from herald_api.params import API_PREFIX
from herald_api.settings import ApiSettings
from herald_api.stats.endpoints import router as stats_router
from herald_common.db.engine import create_engine, create_sessionmaker

log = structlog.get_logger()

IMPORT_PATH = f"{API_PREFIX}/clients/import"
RELAY_STOP_SECONDS = 5.0

DESCRIPTION = """
herald sends a mailing's text to every client matching its filter, inside the mailing's
time frame and each client's local send window, through an external send API.

Everything under `/api/v1` needs an API key: `Authorization: Bearer <key>` (create one
with `herald api-key create --name NAME`).

Every error has one shape:
`{"error": {"code": "...", "message": "...", "fields": [{"field": "...", "message": "..."}]}}`
with `code` one of `unauthorized` (401), `not_found` (404), `method_not_allowed` (405),
`conflict` (409), `payload_too_large` (413), `unsupported_media_type` (415) and
`validation_error` (422). `field` is the dotted path inside the body, or the query
parameter's name.

Lists are paginated by id: pass the `next_cursor` of a page as `cursor` to get the next.
Send `X-Correlation-ID` to follow a request through the logs and the events it causes.

`POST /clients`, `POST /mailings` and `POST /clients/import` take an `Idempotency-Key`
header: a retry with the same key and the same request gets the first response again
(`Idempotent-Replayed: true`) and creates nothing.
"""

OPENAPI_TAGS = [
    {"name": "clients", "description": "The client directory and its bulk import."},
    {"name": "mailings", "description": "Mailings and their messages."},
    {"name": "stats", "description": "Message counts by status."},
    {"name": "health", "description": "Liveness and readiness probes (no key needed)."},
]


def create_app(settings: ApiSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine)
        relay = OutboxRelay(
            sessionmaker,
            settings.amqp_url,
            settings.queue_type,
            interval=settings.outbox_relay_interval,
        )
        app.state.herald = ApiState(
            settings=settings, engine=engine, sessionmaker=sessionmaker, relay=relay
        )
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        log.info("api.started")
        try:
            yield
        finally:
            relay.stop()
            try:
                await asyncio.wait_for(relay_task, RELAY_STOP_SECONDS)
            except TimeoutError:
                log.warning("api.relay_stop_timeout")
            await engine.dispose()
            log.info("api.stopped")

    app = FastAPI(
        title="herald",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_tags=OPENAPI_TAGS,
        lifespan=lifespan,
        # FastAPI's own pages load their scripts from a CDN; install_docs serves herald's copy.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    install_replays(app)

    for router in (clients_router, mailings_router, stats_router):
        app.include_router(
            router,
            # Their routes are AuthenticatedRoutes: the key is checked before the body is read.
            dependencies=[Depends(bind_path_ids)],
            responses=error_responses(401),
        )
    app.include_router(health.router)
    install_docs(app)
    mount_admin(app, settings)

    # Added last runs first: the context middleware wraps everything, including the 413s.
    app.add_middleware(AllowedMethodsMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=settings.api_max_body_bytes,
        # The admin UI's upload of the same import takes the same limit.
        limits={
            IMPORT_PATH: settings.api_max_import_bytes,
            ADMIN_IMPORT_PATH: settings.api_max_import_bytes,
        },
    )
    app.add_middleware(RequestContextMiddleware)
    return app
