"""Liveness and readiness probes, and the Prometheus metrics: open, no API key needed."""

import asyncio
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from sqlalchemy import text

from herald_api.deps import ApiState, StateDep
from herald_api.errors import ErrorBody, FieldError
from herald_common import metrics

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_SECONDS = 2.0

Check = Literal["ok", "down"]


class Alive(BaseModel):
    status: Literal["ok"] = Field(description="Always ok: the process answers.", examples=["ok"])


class Checks(BaseModel):
    postgresql: Check = Field(description="Whether PostgreSQL answers `SELECT 1`.", examples=["ok"])
    rabbitmq: Check = Field(description="Whether the outbox relay is connected.", examples=["ok"])


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"] = Field(
        description="ready when every check is ok.", examples=["ready"]
    )
    checks: Checks = Field(
        description="Each dependency's state.", examples=[{"postgresql": "ok", "rabbitmq": "ok"}]
    )
    error: ErrorBody | None = Field(
        default=None,
        description="When not ready: the usual error shape naming what is down.",
        examples=[None],
    )


@router.get(
    "/healthz",
    summary="Liveness",
    response_description="The process is alive.",
    description="200 while the process runs; touches neither PostgreSQL nor RabbitMQ.",
)
async def healthz() -> Alive:
    return Alive(status="ok")


@router.get(
    "/readyz",
    summary="Readiness",
    response_description="Every dependency is up.",
    description=(
        "200 when PostgreSQL answers and RabbitMQ is connected, else 503 naming which is down."
    ),
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A dependency is down."}},
)
async def readyz(state: StateDep) -> JSONResponse:
    checks = Checks(
        postgresql="ok" if await _database_answers(state) else "down",
        rabbitmq="ok" if state.relay.broker_connected else "down",
    )
    down = [name for name, value in checks.model_dump().items() if value == "down"]
    if not down:
        return JSONResponse(Readiness(status="ready", checks=checks).model_dump(mode="json"))
    error = ErrorBody(
        code="not_ready",
        message=f"not ready: {', '.join(down)} down",
        fields=[FieldError(field=name, message="down") for name in down],
    )
    body = Readiness(status="not_ready", checks=checks, error=error)
    return JSONResponse(body.model_dump(mode="json"), status_code=503)


async def _database_answers(state: ApiState) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:  # any failure means "not ready", whatever its kind
        return False
    return True


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_description="Every metric in Prometheus' text format.",
    description=(
        "The api's metrics; with several workers, the sum over them"
        " (docs/observability.md lists each metric)."
    ),
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def prometheus_metrics() -> Response:
    # A plain def: FastAPI runs it in a thread, so reading many workers' files never
    # holds up the event loop.
    return Response(metrics.latest(), media_type=CONTENT_TYPE_LATEST)
