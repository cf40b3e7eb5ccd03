"""Exception handlers: every error, FastAPI's and Starlette's included, in one shape."""

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from herald_api.errors import (
    FieldError,
    HeraldError,
    error_response,
    summary,
    validation_fields,
)

log = structlog.get_logger()

_CODES = {
    400: "validation_error",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}


async def _herald_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HeraldError)
    return error_response(exc.status_code, exc.code, exc.message, exc.fields, exc.headers)


async def _request_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = validation_fields(exc.errors())
    return error_response(422, "validation_error", summary(fields), fields)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status_code = exc.status_code
    code = _CODES.get(status_code, "http_error")
    message = str(exc.detail)
    if status_code == 400:
        # FastAPI answers 400 when it cannot even decode the body (e.g. invalid UTF-8).
        status_code, message = 422, "the body could not be decoded as JSON"
        return error_response(
            status_code, code, message, [FieldError(field="body", message=message)]
        )
    if status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    elif status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return error_response(status_code, code, message, headers=exc.headers)


async def _client_disconnect(_request: Request, _exc: Exception) -> JSONResponse:
    # Nobody is left to read this; answering keeps the error log free of noise.
    log.info("http.client_disconnected")
    return error_response(400, "client_disconnected", "the client went away mid-request")


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("http.unhandled_error", error_type=type(exc).__name__)
    return error_response(500, "internal_error", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HeraldError, _herald_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnect)
    app.add_exception_handler(Exception, _unexpected_error)
