"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS): how to send NDJSON bodies, and
the one kind of schema-valid request the API may reject."""

from typing import Any

import orjson
import schemathesis
from schemathesis.core.failures import Failure
from schemathesis.openapi.checks import RejectedPositiveData

# A mailing's start_at must be before its end_at, and a send window's start must differ
# from its end. JSON Schema cannot compare two fields, so these rules are only stated in
# the fields' descriptions, and a body breaking one is schema-valid yet a 422. After a
# PATCH the rule holds between a field sent and one stored, which no generator can see
# in advance; so the failure is recognised by the API's answer rather than filtered out
# of the generated bodies.
CROSS_FIELD_ERRORS = {
    ("end_at", "must be after start_at"),
    ("start_at", "must be before end_at"),  # a PATCH of start_at alone, past the stored end
    ("send_window.end", "must differ from start"),
}


@schemathesis.serializer("application/x-ndjson")
def to_ndjson(_context: schemathesis.SerializationContext, value: Any) -> bytes:
    rows = value if isinstance(value, list) else [value]
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


@schemathesis.hook
def filter_failure(
    _context: schemathesis.HookContext,
    failure: Failure,
    _case: schemathesis.Case[Any],
    response: schemathesis.Response,
) -> bool:
    """Keep every failure but a 422 whose only complaints are cross-field rules."""
    if not isinstance(failure, RejectedPositiveData) or response.status_code != 422:
        return True
    fields = response.json().get("error", {}).get("fields", [])
    complaints = {(field.get("field"), field.get("message")) for field in fields}
    return not complaints or not complaints <= CROSS_FIELD_ERRORS
