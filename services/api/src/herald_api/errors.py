"""One error shape for every failure: ``{"error": {"code", "message", "fields"}}``.

Domain errors carry their HTTP status and code; ``error_handlers`` renders them, and
FastAPI's and Starlette's own errors, into this shape. Nothing here imports FastAPI,
so that the admin CLI starts quickly.
"""

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


class FieldError(BaseModel):
    field: str = Field(
        description="Dotted path of the field inside the body, or the query parameter's name.",
        examples=["phone"],
    )
    message: str = Field(
        description="What is wrong with it.", examples=["must be 11 digits starting with 7"]
    )


class ErrorBody(BaseModel):
    code: str = Field(
        description=(
            "Stable machine-readable code: unauthorized, not_found, conflict, validation_error,"
            " payload_too_large, method_not_allowed, unsupported_media_type."
        ),
        examples=["validation_error"],
    )
    message: str = Field(
        description="A human-readable summary.",
        examples=["phone: must be 11 digits starting with 7"],
    )
    fields: list[FieldError] = Field(
        description="The offending fields; empty when the error is not about a field.",
        examples=[[{"field": "phone", "message": "must be 11 digits starting with 7"}]],
    )


class ErrorResponse(BaseModel):
    """Every error the API answers has this shape."""

    error: ErrorBody = Field(
        description="What went wrong.",
        examples=[
            {
                "code": "validation_error",
                "message": "phone: must be 11 digits starting with 7, e.g. 79991234567",
                "fields": [
                    {
                        "field": "phone",
                        "message": "must be 11 digits starting with 7, e.g. 79991234567",
                    }
                ],
            }
        ],
    )


class HeraldError(Exception):
    """A failure the client can act on; rendered with its status by one handler."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        fields: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = list(fields)
        self.headers = dict(headers or {})


class NotFound(HeraldError):
    status_code = 404
    code = "not_found"


class Conflict(HeraldError):
    status_code = 409
    code = "conflict"


class Unauthorized(HeraldError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class ValidationFailed(HeraldError):
    status_code = 422
    code = "validation_error"

    @classmethod
    def on(cls, field: str, message: str) -> "ValidationFailed":
        return cls(f"{field}: {message}", [FieldError(field=field, message=message)])


class UnsupportedMediaType(HeraldError):
    status_code = 415
    code = "unsupported_media_type"


class PayloadTooLarge(HTTPException):
    """Raised while the body streams in; an HTTPException so that FastAPI passes it through."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


def error_response(
    status_code: int,
    code: str,
    message: str,
    fields: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, fields=list(fields)))
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code, headers=headers)


def validation_fields(errors: Sequence[Any]) -> list[FieldError]:
    """Pydantic/FastAPI errors as field errors, without the ``body.``/``query.`` prefix."""
    return [
        FieldError(field=_field_path(error), message=_message(error))
        for error in errors
        if isinstance(error, Mapping)
    ]


def summary(fields: Sequence[FieldError]) -> str:
    if len(fields) == 1:
        return f"{fields[0].field}: {fields[0].message}"
    names = ", ".join(dict.fromkeys(field.field for field in fields))
    return f"{len(fields)} invalid fields: {names}"


def _field_path(error: Mapping[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    location = loc.pop(0) if loc and loc[0] in _LOCATIONS else "body"
    if error.get("type") == "json_invalid" or not loc:
        return location
    return ".".join(loc)


def _message(error: Mapping[str, Any]) -> str:
    kind = error.get("type")
    context = error.get("ctx") or {}
    if kind == "json_invalid":
        return f"the body is not valid JSON ({context.get('error', 'decode error')})"
    if kind == "missing":
        return "this field is required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind in ("value_error", "assertion_error") and "error" in context:
        return str(context["error"])
    return str(error.get("msg", "invalid value"))


ERROR_DESCRIPTIONS = {
    401: "Missing, malformed, unknown or revoked API key.",
    404: "No such resource.",
    409: "The change conflicts with existing data (e.g. a duplicate phone).",
    413: "The request body is over the size limit.",
    415: "The body's Content-Type is not one this operation reads.",
    422: "Invalid input; `fields` names each offending field.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting the error shape for these statuses."""
    return {
        status: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }
