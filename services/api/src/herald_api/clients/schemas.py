"""Request and response bodies of the client endpoints and the bulk import."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from herald_api.validation import Omittable, OperatorCode, Phone, Tag, TimeZoneName

_PHONE_DESCRIPTION = (
    "Phone number: 11 digits starting with 7, as a string (an integer is accepted and"
    " normalised to a string). Unique in the directory."
)
_OPERATOR_CODE_DESCRIPTION = "Mobile operator code: exactly 3 digits."
_TAG_DESCRIPTION = "Free-form label (1 to 64 characters) that mailings can filter on."
_TIMEZONE_DESCRIPTION = "The client's IANA time zone; send windows are in its local time."
CLIENT_EXAMPLE = {
    "id": 42,
    "phone": "79991234567",
    "operator_code": "999",
    "tag": "vip",
    "timezone": "Europe/Moscow",
    "created_at": "2030-01-01T09:00:00Z",
    "updated_at": "2030-01-02T10:30:00Z",
}


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: Phone = Field(description=_PHONE_DESCRIPTION, examples=["79991234567"])
    operator_code: OperatorCode | None = Field(
        default=None,
        description=_OPERATOR_CODE_DESCRIPTION + " Defaults to the phone's digits 2 to 4.",
        examples=["999"],
    )
    tag: Tag | None = Field(default=None, description=_TAG_DESCRIPTION, examples=["vip"])
    timezone: TimeZoneName = Field(description=_TIMEZONE_DESCRIPTION, examples=["Europe/Moscow"])

    @property
    def resolved_operator_code(self) -> str:
        return self.operator_code or default_operator_code(self.phone)


def default_operator_code(phone: str) -> str:
    """A client's operator code when none is given: the phone's digits 2 to 4 (after the
    country's 7, the operator's DEF code)."""
    return phone[1:4]


class ClientUpdate(BaseModel):
    """Only the fields sent change. ``tag`` may be null (no tag); the others may be left out
    but not null."""

    model_config = ConfigDict(extra="forbid")

    phone: Omittable[Phone] = Field(
        default=None,
        description=_PHONE_DESCRIPTION
        + " Changing it without `operator_code` re-derives the operator code from it.",
        examples=["79991234567"],
    )
    operator_code: Omittable[OperatorCode] = Field(
        default=None, description=_OPERATOR_CODE_DESCRIPTION, examples=["999"]
    )
    tag: Tag | None = Field(
        default=None, description=_TAG_DESCRIPTION + " null removes the tag.", examples=["vip"]
    )
    timezone: Omittable[TimeZoneName] = Field(
        default=None, description=_TIMEZONE_DESCRIPTION, examples=["Asia/Yekaterinburg"]
    )


class ClientRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="The client's id.", examples=[42])
    phone: str = Field(
        description="Phone number, 11 digits starting with 7.", examples=["79991234567"]
    )
    operator_code: str = Field(description=_OPERATOR_CODE_DESCRIPTION, examples=["999"])
    tag: str | None = Field(description=_TAG_DESCRIPTION, examples=["vip"])
    timezone: str = Field(description=_TIMEZONE_DESCRIPTION, examples=["Europe/Moscow"])
    created_at: datetime = Field(
        description="When the client was created.", examples=["2030-01-01T09:00:00Z"]
    )
    updated_at: datetime = Field(
        description="When the client last changed.", examples=["2030-01-02T10:30:00Z"]
    )


class ClientPage(BaseModel):
    items: list[ClientRead] = Field(
        description="Clients in ascending id order.", examples=[[CLIENT_EXAMPLE]]
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page.",
        examples=["AAAAAAAABNI"],
    )


class ImportRowError(BaseModel):
    line: int = Field(description="1-based line number in the uploaded file.", examples=[17])
    field: str | None = Field(
        description="The offending column, or null when the whole line is unreadable.",
        examples=["phone"],
    )
    message: str = Field(
        description="What is wrong with it.",
        examples=["must be 11 digits starting with 7, e.g. 79991234567"],
    )


class ImportResult(BaseModel):
    """``received`` = ``created`` + ``updated`` + ``duplicates`` + ``invalid``."""

    received: int = Field(
        description="Data lines read (blank lines and the CSV header excluded).", examples=[1000]
    )
    created: int = Field(description="New clients inserted.", examples=[970])
    updated: int = Field(
        description="Existing clients overwritten (only with upsert=true).", examples=[0]
    )
    duplicates: int = Field(
        description=(
            "Lines skipped because their phone already exists (upsert=false) or because a"
            " later line of the same chunk carries the same phone (upsert=true)."
        ),
        examples=[10],
    )
    invalid: int = Field(description="Lines rejected by validation.", examples=[20])
    errors: list[ImportRowError] = Field(
        description="Rejected and duplicate lines with the reason (at most 1000).",
        examples=[
            [
                {
                    "line": 3,
                    "field": "timezone",
                    "message": "must be an IANA time zone name, e.g. 'Europe/Moscow'",
                }
            ]
        ],
    )
    errors_truncated: bool = Field(
        description="True when more errors occurred than `errors` lists.", examples=[False]
    )
