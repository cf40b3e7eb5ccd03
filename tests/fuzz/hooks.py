"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS): how to send NDJSON bodies, a
fresh Idempotency-Key for every positive case, and the failures that are none: the one kind
of schema-valid request the API may reject, and the 413 of an oversized invalid body."""

import re
import uuid
from typing import Any

import orjson
import schemathesis
from schemathesis.core.failures import AcceptedNegativeData, Failure
from schemathesis.openapi.checks import RejectedPositiveData

from herald_api.idempotency.service import KEY_HEADER, KEY_MAX_LENGTH, KEY_PATTERN

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


# Schemathesis draws keys from a small space (the documented example above all) and sends
# them again with other bodies and after other steps. By design a key reused for another
# request is a 422, and a replay names the resource the first request created, which a
# later step may have deleted (ST302). tests/integration/api/test_idempotency.py tests
# both; here every positive case with a well-formed key gets one of its own, so that each
# POST is a first one. Negative cases are sent as drawn: editing one turns it positive,
# and a case meant to lack its Authorization header would then be sent with it.
_UNIQUE_SUFFIX = 1 + 32  # "." and a UUID's hex


@schemathesis.hook
def before_call(_context: schemathesis.HookContext, case: schemathesis.Case[Any], **_: Any) -> None:
    if case.meta is not None and not case.meta.generation.mode.is_positive:
        return
    value = case.headers.get(KEY_HEADER)  # a case-insensitive dict
    if isinstance(value, str) and len(value) <= KEY_MAX_LENGTH and re.fullmatch(KEY_PATTERN, value):
        case.headers[KEY_HEADER] = f"{value[: KEY_MAX_LENGTH - _UNIQUE_SUFFIX]}.{uuid.uuid4().hex}"


@schemathesis.hook
def filter_failure(
    _context: schemathesis.HookContext,
    failure: Failure,
    _case: schemathesis.Case[Any],
    response: schemathesis.Response,
) -> bool:
    """Keep every failure but a 422 whose only complaints are cross-field rules, and a 413
    for a schema-violating body: a rejection, which schemathesis does not count as one
    (a generated body of some hundred KiB, over the JSON limit, met it once)."""
    if isinstance(failure, AcceptedNegativeData) and response.status_code == 413:
        return False
    if not isinstance(failure, RejectedPositiveData) or response.status_code != 422:
        return True
    fields = response.json().get("error", {}).get("fields", [])
    complaints = {(field.get("field"), field.get("message")) for field in fields}
    return not complaints or not complaints <= CROSS_FIELD_ERRORS
