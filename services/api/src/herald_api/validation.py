"""Input rules shared by the REST schemas and the bulk importer, with readable messages.

Every string is also checked to be storable: PostgreSQL rejects NUL characters and
lone surrogates cannot be encoded, and either must be a 422, never a 500.
"""

import re
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, TypeVar
from zoneinfo import available_timezones

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema
from typing_extensions import TypeAliasType

from herald_common.db.models import MAILING_TEXT_MAX_LENGTH, TAG_MAX_LENGTH

_PHONE = re.compile(r"7[0-9]{10}")
_OPERATOR_CODE = re.compile(r"[0-9]{3}")
_CLOCK = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")
_DATETIME_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]")

PHONE_MESSAGE = "must be 11 digits starting with 7, e.g. 79991234567"
# A mailing's own rate, in messages a second: from one message every 100 s (a slower
# rate's slots would be further apart than a sender holds a message) to this.
MIN_RATE_LIMIT = 0.01
MAX_RATE_LIMIT = 100_000
RATE_MESSAGE = f"must be a number from {MIN_RATE_LIMIT} to {MAX_RATE_LIMIT}, e.g. 50 or 0.5"
# The JSON Schema side of storable() and of "not blank": no NUL anywhere, and at least one
# character that str.strip() keeps (the characters excluded are exactly str.isspace()'s).
_STORABLE = "^[^\\x00]*$"
_NOT_BLANK = (
    "^[^\\x00]*[^\\x00\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000][^\\x00]*$"
)
_PHONE_AS_INTEGER = {"type": "integer", "minimum": 70_000_000_000, "maximum": 79_999_999_999}

T = TypeVar("T")


def storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def phone(value: object) -> str:
    """A phone as a string; an integer is accepted and normalised to its digits.

    So is a number with a zero fraction (79991234567.0): JSON Schema counts it as an
    integer, and the schema must not allow what is rejected.
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _PHONE.fullmatch(value):
        raise ValueError(PHONE_MESSAGE)
    return value


def operator_code(value: object) -> str:
    if not isinstance(value, str) or not _OPERATOR_CODE.fullmatch(value):
        raise ValueError("must be a string of exactly 3 digits, e.g. '999'")
    return value


def tag(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= TAG_MAX_LENGTH:
        raise ValueError(f"must be a string of 1 to {TAG_MAX_LENGTH} characters")
    return storable(value)


@cache
def time_zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def time_zone(value: object) -> str:
    if not isinstance(value, str) or value not in time_zone_names():
        raise ValueError("must be an IANA time zone name, e.g. 'Europe/Moscow'")
    return value


def mailing_text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    if len(value) > MAILING_TEXT_MAX_LENGTH:
        raise ValueError(f"must be at most {MAILING_TEXT_MAX_LENGTH} characters")
    return storable(value)


def rfc3339(value: object) -> object:
    """Only strings that look like an RFC 3339 date-time: no Unix timestamps, no bare dates."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATETIME_START.match(value):
        raise ValueError(
            "must be an RFC 3339 date-time with an offset, e.g. 2030-01-01T09:00:00+03:00"
        )
    return value


def with_offset(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("the UTC offset is missing: write e.g. 2030-01-01T09:00:00+03:00 or ...Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


def not_null(value: object) -> object:
    # Validators do not run for omitted fields, so this rejects only an explicit null.
    if value is None:
        raise ValueError("must not be null")
    return value


def _without_null(schema: dict[str, Any]) -> None:
    """The JSON schema of an omittable field minus its null branch and its null default."""
    branches = [branch for branch in schema.pop("anyOf") if branch != {"type": "null"}]
    # pydantic flattens a value schema that is itself an anyOf into the nullable one.
    schema.update(branches[0] if len(branches) == 1 else {"anyOf": branches})
    schema.pop("default", None)


def message_rate(value: object) -> float:
    """A JSON number (an integer too) from MIN_RATE_LIMIT to MAX_RATE_LIMIT; never a string or
    a bool, which the schema's ``number`` does not allow either. NaN and infinity (which a
    JSON body may spell) fail the comparison."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(RATE_MESSAGE)
    if not MIN_RATE_LIMIT <= value <= MAX_RATE_LIMIT:
        raise ValueError(RATE_MESSAGE)
    return float(value)


def clock(value: object) -> str:
    if not isinstance(value, str) or not _CLOCK.fullmatch(value):
        raise ValueError("must be a 24-hour time HH:MM, e.g. '09:00'")
    return value


# The validators above enforce each rule once, in Python, with readable messages;
# WithJsonSchema only documents the same rule in the OpenAPI schema.
Phone = Annotated[
    str,
    BeforeValidator(phone),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": "^7[0-9]{10}$"}, _PHONE_AS_INTEGER]}),
]
OperatorCode = Annotated[
    str,
    BeforeValidator(operator_code),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]{3}$"}),
]
Tag = Annotated[
    str,
    BeforeValidator(tag),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": TAG_MAX_LENGTH, "pattern": _STORABLE}
    ),
]
# A named alias, so that the ~600 zone names are one component of the OpenAPI document
# (#/components/schemas/TimeZoneName), referenced wherever a zone is accepted.
TimeZoneName = TypeAliasType(
    "TimeZoneName",
    Annotated[
        str,
        BeforeValidator(time_zone),
        WithJsonSchema(
            {
                "type": "string",
                "enum": sorted(time_zone_names()),
                "description": "An IANA time zone name, e.g. `Europe/Moscow`.",
            }
        ),
    ],
)
MailingText = Annotated[
    str,
    BeforeValidator(mailing_text),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAILING_TEXT_MAX_LENGTH,
            "pattern": _NOT_BLANK,
        }
    ),
]
OffsetDateTime = Annotated[
    datetime,
    BeforeValidator(rfc3339),
    AfterValidator(with_offset),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Clock = Annotated[
    str,
    BeforeValidator(clock),
    WithJsonSchema({"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}),
]

MessageRate = Annotated[
    float,
    BeforeValidator(message_rate),
    WithJsonSchema({"type": "number", "minimum": MIN_RATE_LIMIT, "maximum": MAX_RATE_LIMIT}),
]


# A field of a partial update that may be left out but not sent as null (null would mean
# "no value", which these fields cannot have). The schema says so: no null branch.
Omittable = Annotated[T | None, BeforeValidator(not_null), Field(json_schema_extra=_without_null)]


def unique(values: list[str]) -> list[str]:
    """The list without repeats, first occurrences kept in order."""
    return list(dict.fromkeys(values))
