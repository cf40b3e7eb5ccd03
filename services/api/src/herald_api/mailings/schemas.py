"""Request and response bodies of the mailing endpoints and the message ledger."""

from datetime import datetime, time
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from herald_api.validation import (
    Clock,
    MailingText,
    MessageRate,
    OffsetDateTime,
    Omittable,
    OperatorCode,
    Tag,
    unique,
)
from herald_common.db.models import MAILING_TEXT_MAX_LENGTH, Mailing, Message
from herald_common.domain import MailingStatus, MessageStatus

MAX_FILTER_ITEMS = 1000
MAILING_EXAMPLE = {
    "id": 7,
    "text": "Spring sale: -20% today",
    "start_at": "2030-03-01T06:00:00Z",
    "end_at": "2030-03-02T18:00:00Z",
    "filter": {"operator_codes": ["999"], "tags": None},
    "send_window": {"start": "09:00", "end": "21:00"},
    "max_rate": 50.0,
    "status": "scheduled",
    "paused_at": None,
    "cancelled_at": None,
    "created_at": "2030-01-01T09:00:00Z",
    "updated_at": "2030-01-01T09:00:00Z",
}
MESSAGE_EXAMPLE = {
    "id": 1001,
    "mailing_id": 7,
    "client_id": 42,
    "phone": "79991234567",
    "timezone": "Europe/Moscow",
    "status": "sent",
    "due_at": "2030-03-01T06:00:00Z",
    "attempts": 1,
    "last_error": None,
    "error_class": None,
    "next_attempt_at": None,
    "queued_at": "2030-03-01T06:00:01Z",
    "sent_at": "2030-03-01T06:00:02Z",
    "finished_at": "2030-03-01T06:00:02Z",
    "created_at": "2030-03-01T05:59:00Z",
    "updated_at": "2030-03-01T06:00:02Z",
}

OperatorCodes = Annotated[
    list[OperatorCode], Field(min_length=1, max_length=MAX_FILTER_ITEMS), AfterValidator(unique)
]
Tags = Annotated[
    list[Tag], Field(min_length=1, max_length=MAX_FILTER_ITEMS), AfterValidator(unique)
]

_TEXT_DESCRIPTION = f"The message text: not blank, at most {MAILING_TEXT_MAX_LENGTH} characters."
# JSON Schema cannot compare two fields, so the one cross-field rule is stated in words.
_BEFORE_END = (
    " Must be before end_at (after a partial update, the stored one if end_at is not sent):"
    " a rule between two fields that the schema cannot express, so a body breaking it is"
    " schema-valid and still a 422."
)
_START_DESCRIPTION = (
    "When sending may start: RFC 3339 with an offset (a naive time is a 422)." + _BEFORE_END
)
_END_DESCRIPTION = (
    "When sending must stop: RFC 3339 with an offset. Nothing is sent at or after it; what"
    " is unsent then expires. Must be after start_at (see start_at)."
)
_FILTER_DESCRIPTION = (
    "Which clients get the mailing: a client matches when it matches every list given."
    " Omitted or null: every client."
)
_WINDOW_DESCRIPTION = (
    "Client-local hours in which messages may be sent. Omitted or null: any time of day."
)
_RATE_DESCRIPTION = (
    "At most this many of the mailing's messages a second, across all senders (messages/s)."
    " Null: no limit of its own; HERALD_PROBE_RATE_LIMIT still applies."
)


class MailingFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operator_codes: OperatorCodes | None = Field(
        default=None,
        description="Clients with one of these operator codes (non-empty, deduplicated).",
        examples=[["999", "912"]],
    )
    tags: Tags | None = Field(
        default=None,
        description="Clients with one of these tags (non-empty, deduplicated).",
        examples=[["vip"]],
    )


class SendWindow(BaseModel):
    """``[start, end)`` in each client's local time; ``start > end`` wraps midnight."""

    model_config = ConfigDict(extra="forbid")

    start: Clock = Field(description="Local time sending may begin, HH:MM.", examples=["09:00"])
    end: Clock = Field(
        description=(
            "Local time sending stops, HH:MM. Must differ from start: a rule between two"
            " fields that the schema cannot express."
        ),
        examples=["21:00"],
    )

    @field_validator("end")
    @classmethod
    def _differs_from_start(cls, end: str, info: ValidationInfo) -> str:
        if info.data.get("start") == end:
            raise ValueError("must differ from start")
        return end

    @classmethod
    def of(cls, start: time | None, end: time | None) -> "SendWindow | None":
        if start is None or end is None:
            return None
        return cls(start=start.strftime("%H:%M"), end=end.strftime("%H:%M"))


class MailingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: MailingText = Field(description=_TEXT_DESCRIPTION, examples=["Spring sale: -20% today"])
    start_at: OffsetDateTime = Field(
        description=_START_DESCRIPTION, examples=["2030-03-01T09:00:00+03:00"]
    )
    end_at: OffsetDateTime = Field(
        description=_END_DESCRIPTION, examples=["2030-03-02T21:00:00+03:00"]
    )
    filter: MailingFilter | None = Field(
        default=None,
        description=_FILTER_DESCRIPTION,
        examples=[{"operator_codes": ["999"], "tags": ["vip"]}],
    )
    send_window: SendWindow | None = Field(
        default=None, description=_WINDOW_DESCRIPTION, examples=[{"start": "09:00", "end": "21:00"}]
    )
    max_rate: MessageRate | None = Field(default=None, description=_RATE_DESCRIPTION, examples=[50])

    @field_validator("end_at")
    @classmethod
    def _after_start(cls, end_at: datetime, info: ValidationInfo) -> datetime:
        start_at = info.data.get("start_at")
        if start_at is not None and end_at <= start_at:
            raise ValueError("must be after start_at")
        return end_at


class MailingUpdate(BaseModel):
    """Only the fields sent change; the merged mailing must still be valid. ``filter``,
    ``send_window`` and ``max_rate`` may be null (removed); the others may be left out but
    not null."""

    model_config = ConfigDict(extra="forbid")

    text: Omittable[MailingText] = Field(
        default=None, description=_TEXT_DESCRIPTION, examples=["Spring sale: -30% today"]
    )
    start_at: Omittable[OffsetDateTime] = Field(
        default=None, description=_START_DESCRIPTION, examples=["2030-03-01T10:00:00+03:00"]
    )
    end_at: Omittable[OffsetDateTime] = Field(
        default=None, description=_END_DESCRIPTION, examples=["2030-03-03T21:00:00+03:00"]
    )
    filter: MailingFilter | None = Field(
        default=None,
        description=_FILTER_DESCRIPTION + " null removes the filter.",
        examples=[{"tags": ["vip", "new"]}],
    )
    send_window: SendWindow | None = Field(
        default=None,
        description=_WINDOW_DESCRIPTION + " null removes the window.",
        examples=[{"start": "22:00", "end": "06:00"}],
    )
    max_rate: MessageRate | None = Field(
        default=None,
        description=_RATE_DESCRIPTION + " Omitted: unchanged; null removes the limit.",
        examples=[20],
    )


class MailingFilterRead(BaseModel):
    operator_codes: list[str] | None = Field(
        description="Operator codes a client must have one of; null: any.", examples=[["999"]]
    )
    tags: list[str] | None = Field(
        description="Tags a client must have one of; null: any.", examples=[["vip"]]
    )


class MailingRead(BaseModel):
    id: int = Field(description="The mailing's id.", examples=[7])
    text: str = Field(description="The message text.", examples=["Spring sale: -20% today"])
    start_at: datetime = Field(
        description="When sending may start.", examples=["2030-03-01T06:00:00Z"]
    )
    end_at: datetime = Field(description="When sending stops.", examples=["2030-03-02T18:00:00Z"])
    filter: MailingFilterRead = Field(
        description="Which clients get the mailing.",
        examples=[{"operator_codes": ["999"], "tags": None}],
    )
    send_window: SendWindow | None = Field(
        description="Client-local sending hours; null: any time.",
        examples=[{"start": "09:00", "end": "21:00"}],
    )
    max_rate: float | None = Field(
        description=(
            "At most this many of its messages a second, across all senders (messages/s);"
            " null: no limit of its own (HERALD_PROBE_RATE_LIMIT still applies)."
        ),
        examples=[50.0],
    )
    status: MailingStatus = Field(
        description=(
            "Derived, the first that holds: cancelled once cancelled (POST .../cancel);"
            " finished from end_at; paused while paused (POST .../pause, until"
            " POST .../resume); running from start_at; scheduled before."
        ),
        examples=["scheduled"],
    )
    paused_at: datetime | None = Field(
        description=(
            "When an operator paused it; null when it is not paused (a resume or a cancel"
            " clears it). A mailing whose end passed while paused is finished and keeps it."
        ),
        examples=[None],
    )
    cancelled_at: datetime | None = Field(
        description="When an operator cancelled it; null unless cancelled.", examples=[None]
    )
    created_at: datetime = Field(
        description="When it was created.", examples=["2030-01-01T09:00:00Z"]
    )
    updated_at: datetime = Field(
        description="When it last changed.", examples=["2030-01-02T09:00:00Z"]
    )

    @classmethod
    def of(cls, mailing: Mailing, status: MailingStatus) -> "MailingRead":
        return cls(
            id=mailing.id,
            text=mailing.text,
            start_at=mailing.start_at,
            end_at=mailing.end_at,
            filter=MailingFilterRead(
                operator_codes=mailing.filter_operator_codes, tags=mailing.filter_tags
            ),
            send_window=SendWindow.of(mailing.send_window_start, mailing.send_window_end),
            max_rate=mailing.max_rate,
            status=status,
            paused_at=mailing.paused_at,
            cancelled_at=mailing.cancelled_at,
            created_at=mailing.created_at,
            updated_at=mailing.updated_at,
        )


class MailingPage(BaseModel):
    items: list[MailingRead] = Field(
        description="Mailings in ascending id order.", examples=[[MAILING_EXAMPLE]]
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page.",
        examples=["AAAAAAAAAAc"],
    )


class MessageRead(BaseModel):
    """One row of the ledger: what happened to this mailing's message to one client."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(
        description="The message's id (the msgId sent to the external API).", examples=[1001]
    )
    mailing_id: int = Field(description="Its mailing.", examples=[7])
    client_id: int = Field(description="Its client (may since have been deleted).", examples=[42])
    phone: str = Field(
        description="The client's phone when the message was created.", examples=["79991234567"]
    )
    timezone: str = Field(
        description="The client's time zone when it was created.", examples=["Europe/Moscow"]
    )
    status: MessageStatus = Field(description="Where the message stands.", examples=["sent"])
    due_at: datetime = Field(
        description="The first instant it may be sent.", examples=["2030-03-01T06:00:00Z"]
    )
    attempts: int = Field(description="Requests made to the external API.", examples=[1])
    last_error: str | None = Field(description="The last failure, if any.", examples=["HTTP 503"])
    error_class: str | None = Field(description="Class of the last failure.", examples=["http_5xx"])
    next_attempt_at: datetime | None = Field(description="When a retry is due.", examples=[None])
    queued_at: datetime | None = Field(
        description="When a send command was published.", examples=["2030-03-01T06:00:01Z"]
    )
    sent_at: datetime | None = Field(
        description="When the external API accepted it.", examples=["2030-03-01T06:00:02Z"]
    )
    finished_at: datetime | None = Field(
        description="When it reached a final status.", examples=["2030-03-01T06:00:02Z"]
    )
    created_at: datetime = Field(
        description="When the row was created.", examples=["2030-03-01T05:59:00Z"]
    )
    updated_at: datetime = Field(
        description="When the row last changed.", examples=["2030-03-01T06:00:02Z"]
    )

    @classmethod
    def of(cls, message: Message) -> "MessageRead":
        return cls.model_validate(message)


class MessagePage(BaseModel):
    items: list[MessageRead] = Field(
        description="Messages in ascending id order.", examples=[[MESSAGE_EXAMPLE]]
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page.",
        examples=["AAAAAAAAA-k"],
    )


AUDIENCE_ZONE_EXAMPLE = {
    "timezone": "Europe/Moscow",
    "clients": 1200,
    "first_send_at": "2030-03-01T06:00:00Z",
    "first_send_local": "2030-03-01T09:00:00+03:00",
}
NEVER_ZONE_EXAMPLE = {
    "timezone": "Asia/Kamchatka",
    "clients": 30,
    "first_send_at": None,
    "first_send_local": None,
}


class AudienceZone(BaseModel):
    """The matching clients of one time zone and when their first message would go out."""

    timezone: str = Field(description="The clients' IANA time zone.", examples=["Europe/Moscow"])
    clients: int = Field(description="Matching clients in this zone.", examples=[1200])
    first_send_at: datetime | None = Field(
        description=(
            "The first instant inside the frame (from `computed_at` on, once the frame has"
            " started) whose local time in this zone is inside the send window: when the"
            " scheduler would make these clients' messages due. null: there is none, and"
            " these clients never get the mailing."
        ),
        examples=["2030-03-01T06:00:00Z"],
    )
    first_send_local: datetime | None = Field(
        description="`first_send_at` as the zone's local time, with its offset.",
        examples=["2030-03-01T09:00:00+03:00"],
    )


class AudiencePreview(BaseModel):
    """Who a mailing with these terms would reach, and when, computed without creating it."""

    matching: int = Field(description="Clients the filter matches.", examples=[1230])
    reachable: int = Field(
        description="Matching clients whose send window opens inside the frame.",
        examples=[1200],
    )
    never: int = Field(
        description=(
            "Matching clients who would never get a message: in their time zone the window"
            " does not open inside the (remaining) frame. `matching` = `reachable` + `never`."
        ),
        examples=[30],
    )
    computed_at: datetime = Field(
        description="The instant the preview was computed at (the database's clock).",
        examples=["2030-02-27T12:00:00Z"],
    )
    zones: list[AudienceZone] = Field(
        description=(
            "One entry per time zone of the matching clients: the earliest first send"
            " first, then the zones that never send, each group by zone name."
        ),
        examples=[[AUDIENCE_ZONE_EXAMPLE, NEVER_ZONE_EXAMPLE]],
    )
