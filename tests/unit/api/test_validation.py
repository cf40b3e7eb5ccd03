"""Field rules shared by the REST schemas and the importer."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from herald_api.clients.schemas import ClientCreate
from herald_api.errors import validation_fields
from herald_api.mailings.schemas import MailingCreate


def test_phone_accepts_an_integer_and_normalises_it() -> None:
    client = ClientCreate.model_validate({"phone": 79991234567, "timezone": "UTC"})

    assert client.phone == "79991234567"


@pytest.mark.parametrize("phone", ["79991234567", "70000000000"])
def test_valid_phones(phone: str) -> None:
    assert ClientCreate.model_validate({"phone": phone, "timezone": "UTC"}).phone == phone


def test_filter_lists_are_deduplicated_in_order() -> None:
    mailing = MailingCreate.model_validate(
        {
            "text": "x",
            "start_at": "2030-01-01T00:00:00Z",
            "end_at": "2030-01-02T00:00:00Z",
            "filter": {"operator_codes": ["912", "999", "912"], "tags": ["b", "a", "b"]},
        }
    )

    assert mailing.filter is not None
    assert mailing.filter.operator_codes == ["912", "999"]
    assert mailing.filter.tags == ["b", "a"]


def test_datetimes_are_normalised_to_utc() -> None:
    mailing = MailingCreate.model_validate(
        {"text": "x", "start_at": "2030-01-01T03:00:00+03:00", "end_at": "2030-01-01T01:00:00Z"}
    )

    assert mailing.start_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert mailing.start_at.tzinfo is UTC


def test_a_wrapping_send_window_is_valid() -> None:
    mailing = MailingCreate.model_validate(
        {
            "text": "x",
            "start_at": "2030-01-01T00:00:00Z",
            "end_at": "2030-01-02T00:00:00Z",
            "send_window": {"start": "22:00", "end": "06:00"},
        }
    )

    assert mailing.send_window is not None
    assert (mailing.send_window.start, mailing.send_window.end) == ("22:00", "06:00")


def test_validation_errors_become_dotted_field_paths_without_the_body_prefix() -> None:
    with pytest.raises(ValidationError) as raised:
        MailingCreate.model_validate(
            {
                "text": "",
                "start_at": "x",
                "end_at": "2030-01-01T00:00:00Z",
                "filter": {"tags": ["", "ok"]},
            }
        )
    errors = [{**error, "loc": ("body", *error["loc"])} for error in raised.value.errors()]

    fields = validation_fields(errors)

    assert [field.field for field in fields] == ["text", "start_at", "filter.tags.0"]
    assert fields[0].message == "must be a non-empty string"
