"""The API's path prefix, and path parameters shared by several endpoints, documented once."""

from typing import Annotated, Any

from fastapi import Path
from fastapi.openapi.models import Example

# Routers carry the full prefix themselves, so that a route's template (the metrics and
# access-log label) is its whole path.
API_PREFIX = "/api/v1"
BIGINT_MAX = 2**63 - 1


def example(value: Any) -> dict[str, Example]:
    """A parameter's example where Swagger UI looks for it (the parameter, not its schema)."""
    return {"example": Example(summary="Example", value=value)}


ClientId = Annotated[
    int,
    Path(
        ge=1,
        le=BIGINT_MAX,
        description="The client's id.",
        examples=[42],
        openapi_examples=example(42),
    ),
]
MailingId = Annotated[
    int,
    Path(
        ge=1,
        le=BIGINT_MAX,
        description="The mailing's id.",
        examples=[7],
        openapi_examples=example(7),
    ),
]
