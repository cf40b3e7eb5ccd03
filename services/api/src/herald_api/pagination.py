"""Keyset pagination on ``id``: an opaque cursor (the last id seen) and a page size.

A cursor is the id as 8 big-endian bytes in unpadded base64url: always 11 characters, so
that one pattern in the OpenAPI document says exactly which cursors are accepted (the
first character keeps the sign bit clear, the last leaves the 2 spare bits zero).
"""

import base64
import re
from typing import Annotated

from fastapi import Query
from pydantic import BeforeValidator, WithJsonSchema

from herald_api.errors import ValidationFailed
from herald_api.params import example

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
CURSOR_PATTERN = "^[A-Za-f][A-Za-z0-9_-]{9}[AEIMQUYcgkosw048]$"
_CURSOR = re.compile(CURSOR_PATTERN)
_NOT_A_CURSOR = "not a cursor this API returned"
_ID_BYTES = 8


def _cursor(value: object) -> str:
    if not isinstance(value, str) or not _CURSOR.fullmatch(value):
        raise ValueError(_NOT_A_CURSOR)
    return value


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
    Annotated[
        str, BeforeValidator(_cursor), WithJsonSchema({"type": "string", "pattern": CURSOR_PATTERN})
    ]
    | None,
    Query(
        description="Opaque `next_cursor` of the previous page; omit it for the first page.",
        examples=["AAAAAAAABNI"],
        openapi_examples=example("AAAAAAAABNI"),
    ),
]


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(last_id.to_bytes(_ID_BYTES)).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> int:
    """The id after which the page starts (0 for the first page)."""
    if cursor is None:
        return 0
    try:
        _cursor(cursor)
    except ValueError:
        raise ValidationFailed.on("cursor", _NOT_A_CURSOR) from None
    return int.from_bytes(base64.urlsafe_b64decode(cursor + "="))


def next_cursor(ids: list[int], limit: int) -> str | None:
    """The cursor of the next page, given the ids of a page fetched with ``limit + 1``."""
    return encode_cursor(ids[limit - 1]) if len(ids) > limit else None
