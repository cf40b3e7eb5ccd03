"""HTML forms to and from the REST API's request bodies, and its errors beside the fields.

A form is turned into the very body the REST API takes and validated by the same
pydantic schema, so the admin UI accepts exactly what the API accepts, with the API's
messages. What only a form has is checked here: a local date-time read in the chosen
time zone becomes the aware instant the schema expects.
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from herald_api.errors import FieldError, HeraldError, validation_fields
from herald_api.validation import RATE_MESSAGE, time_zone, time_zone_names
from herald_common.db.models import Client, Mailing

FORM_ERROR = "_form"  # errors that belong to no one field, shown above the form
DEFAULT_TIMEZONE = "UTC"
# A datetime-local input sends minutes (or seconds, with a step); only its value is read.
LOCAL_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")
LOCAL_DATETIME_MESSAGE = "must be a date and time, e.g. 2030-03-01T09:00"
# A decimal number as typed (no "nan", "inf" or "1_000", which float() would also read);
# its range is the schema's to check, with the API's message.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

Model = TypeVar("Model", bound=BaseModel)
FieldErrors = dict[str, list[str]]


def time_zone_choices() -> list[str]:
    """Every zone the API accepts, UTC first (the default), the rest by name."""
    return [DEFAULT_TIMEZONE, *sorted(time_zone_names() - {DEFAULT_TIMEZONE})]


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _texts(form: FormData, name: str) -> list[str]:
    return [value for value in form.getlist(name) if isinstance(value, str) and value]


def field_errors(errors: Iterable[FieldError], fields: dict[str, str]) -> FieldErrors:
    """API field errors by form field: ``fields`` maps an API field path (or its first
    parts) to the form field shown beside it; the rest go above the form."""
    found: FieldErrors = {}
    for error in errors:
        parts = error.field.split(".")
        name = FORM_ERROR
        for length in range(len(parts), 0, -1):
            prefix = ".".join(parts[:length])
            if prefix in fields:
                name = fields[prefix]
                break
        message = error.message if name != FORM_ERROR else f"{error.field}: {error.message}"
        found.setdefault(name, []).append(message)
    return found


def validate(model: type[Model], body: dict[str, Any]) -> tuple[Model | None, list[FieldError]]:
    """The body as the API would read it, or the API's field errors."""
    try:
        return model.model_validate(body), []
    except ValidationError as error:
        return None, validation_fields(error.errors())


def domain_errors(error: HeraldError) -> list[FieldError]:
    """A service's refusal as field errors; one about no field goes above the form."""
    return error.fields or [FieldError(field=FORM_ERROR, message=error.message)]


def local_input(moment: datetime, timezone: str) -> str:
    """An instant as a datetime-local input's value in ``timezone``."""
    return moment.astimezone(ZoneInfo(timezone)).strftime(LOCAL_FORMATS[0])


def rate_input(rate: float | None) -> str:
    """A stored rate as the form shows it: 50 rather than 50.0, and otherwise the shortest
    text that reads back as the same number, so that saving the form keeps it."""
    if rate is None:
        return ""
    return str(int(rate)) if rate.is_integer() else repr(rate)


def parse_local(value: str, zone: ZoneInfo) -> datetime | None:
    """A datetime-local value read as a wall-clock time in ``zone``; None if unreadable.

    In a daylight-saving gap or overlap, the earlier reading is taken (``fold=0``).
    """
    for pattern in LOCAL_FORMATS:
        try:
            return datetime.strptime(value.strip(), pattern).replace(tzinfo=zone)
        except ValueError:
            continue
    return None


# What the form calls each field, for messages shown away from the field itself.
MAILING_LABELS = {
    "text": "Text",
    "start_local": "Start",
    "end_local": "End",
    "timezone": "Time zone",
    "operator_codes": "Operator codes",
    "tags": "Tags",
    "window_start": "Send window from",
    "window_end": "Send window until",
    "max_rate": "Max rate",
    FORM_ERROR: "The mailing",
}
MAILING_FIELDS = {
    "text": "text",
    "start_at": "start_local",
    "end_at": "end_local",
    "filter.operator_codes": "operator_codes",
    "filter.tags": "tags",
    "send_window.start": "window_start",
    "send_window.end": "window_end",
    "send_window": "window_start",
    "max_rate": "max_rate",
}


@dataclass
class MailingForm:
    """The mailing form's fields as typed, so that a form with errors shows them again."""

    text: str = ""
    start_local: str = ""
    end_local: str = ""
    timezone: str = DEFAULT_TIMEZONE
    operator_codes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    window_start: str = ""
    window_end: str = ""
    max_rate: str = ""

    @classmethod
    def of_form(cls, form: FormData) -> "MailingForm":
        return cls(
            text=_text(form, "text"),
            start_local=_text(form, "start_local"),
            end_local=_text(form, "end_local"),
            timezone=_text(form, "timezone") or DEFAULT_TIMEZONE,
            operator_codes=_texts(form, "operator_codes"),
            tags=_texts(form, "tags"),
            window_start=_text(form, "window_start"),
            window_end=_text(form, "window_end"),
            max_rate=_text(form, "max_rate"),
        )

    @classmethod
    def of_mailing(cls, mailing: Mailing, timezone: str) -> "MailingForm":
        window_start, window_end = mailing.send_window_start, mailing.send_window_end
        return cls(
            text=mailing.text,
            start_local=local_input(mailing.start_at, timezone),
            end_local=local_input(mailing.end_at, timezone),
            timezone=timezone,
            operator_codes=list(mailing.filter_operator_codes or []),
            tags=list(mailing.filter_tags or []),
            window_start=window_start.strftime("%H:%M") if window_start else "",
            window_end=window_end.strftime("%H:%M") if window_end else "",
            max_rate=rate_input(mailing.max_rate),
        )

    def body(self) -> tuple[dict[str, Any], list[FieldError]]:
        """The ``POST /mailings`` body these fields make, and what is wrong before it.

        A field whose value cannot even be read is left out of the body, so the schema's
        "this field is required" is replaced by the reason here.
        """
        errors: list[FieldError] = []
        try:
            zone = ZoneInfo(time_zone(self.timezone))
        except ValueError as error:
            errors.append(FieldError(field="timezone", message=str(error)))
            # Still read the times, in UTC, so that their other errors show at once.
            zone = ZoneInfo("UTC")
        body: dict[str, Any] = {"text": self.text}
        for name, value in (("start_at", self.start_local), ("end_at", self.end_local)):
            if not value.strip():
                continue  # the schema says it is required
            moment = parse_local(value, zone)
            if moment is None:
                errors.append(FieldError(field=name, message=LOCAL_DATETIME_MESSAGE))
            else:
                body[name] = moment.isoformat()
        if self.operator_codes or self.tags:
            body["filter"] = {
                "operator_codes": self.operator_codes or None,
                "tags": self.tags or None,
            }
        else:
            body["filter"] = None
        if self.window_start or self.window_end:
            body["send_window"] = {"start": self.window_start, "end": self.window_end}
        else:
            body["send_window"] = None
        rate = self.max_rate.strip()
        if not rate:
            body["max_rate"] = None  # empty: no limit of its own
        elif _DECIMAL.fullmatch(rate):
            body["max_rate"] = float(rate)
        else:
            # Not a number at all: what the API answers for a string.
            errors.append(FieldError(field="max_rate", message=RATE_MESSAGE))
        return body, errors

    def errors(self, found: Sequence[FieldError]) -> FieldErrors:
        return field_errors(found, {**MAILING_FIELDS, "timezone": "timezone"})


def merge_errors(first: Sequence[FieldError], then: Sequence[FieldError]) -> list[FieldError]:
    """``first``, then those of ``then`` about fields ``first`` says nothing of (the form's
    own reason for a field beats the schema's "required" for the value it left out)."""
    named = {error.field for error in first}
    return [*first, *(error for error in then if error.field not in named)]


CLIENT_FIELDS = {"phone": "phone", "operator_code": "operator_code", "tag": "tag"}


@dataclass
class ClientForm:
    phone: str = ""
    operator_code: str = ""
    tag: str = ""
    timezone: str = DEFAULT_TIMEZONE

    @classmethod
    def of_form(cls, form: FormData) -> "ClientForm":
        return cls(
            phone=_text(form, "phone").strip(),
            operator_code=_text(form, "operator_code").strip(),
            tag=_text(form, "tag"),
            timezone=_text(form, "timezone") or DEFAULT_TIMEZONE,
        )

    @classmethod
    def of_client(cls, client: Client) -> "ClientForm":
        return cls(
            phone=client.phone,
            operator_code=client.operator_code,
            tag=client.tag or "",
            timezone=client.timezone,
        )

    def body(self) -> dict[str, Any]:
        """The ``POST /clients`` body; as a PATCH body it replaces every field, a blank
        operator code being derived from the phone again and a blank tag removed."""
        body: dict[str, Any] = {"phone": self.phone, "timezone": self.timezone}
        if self.operator_code:
            body["operator_code"] = self.operator_code
        body["tag"] = self.tag or None
        return body

    def errors(self, found: Sequence[FieldError]) -> FieldErrors:
        return field_errors(found, {**CLIENT_FIELDS, "timezone": "timezone"})
