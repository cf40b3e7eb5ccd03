"""Keyset pagination on ``id``: an opaque cursor (the last id seen) and a page size."""

import base64
import binascii
from typing import Annotated

from fastapi import Query

from herald_api.errors import ValidationFailed
from herald_api.params import BIGINT_MAX, example

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000

Limit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_LIMIT,
        description=f"Page size, 1..{MAX_LIMIT}.",
        examples=[DEFAULT_LIMIT],
        openapi_examples=example(DEFAULT_LIMIT),
    ),
]
Cursor = Annotated[
    str | None,
    Query(
        max_length=64,
        description="Opaque `next_cursor` of the previous page; omit it for the first page.",
        examples=["MTIzNA"],
        openapi_examples=example("MTIzNA"),
    ),
]


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> int:
    """The id after which the page starts (0 for the first page)."""
    if cursor is None:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise ValidationFailed.on("cursor", "not a cursor this API returned") from None
    if not raw.isdigit() or len(raw) > 19 or not 0 < int(raw) <= BIGINT_MAX:
        raise ValidationFailed.on("cursor", "not a cursor this API returned")
    return int(raw)


def next_cursor(ids: list[int], limit: int) -> str | None:
    """The cursor of the next page, given the ids of a page fetched with ``limit + 1``."""
    return encode_cursor(ids[limit - 1]) if len(ids) > limit else None
