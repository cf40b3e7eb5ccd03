"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS): how to send NDJSON bodies."""

from typing import Any

import orjson
import schemathesis


@schemathesis.serializer("application/x-ndjson")
def to_ndjson(_context: schemathesis.SerializationContext, value: Any) -> bytes:
    rows = value if isinstance(value, list) else [value]
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)
