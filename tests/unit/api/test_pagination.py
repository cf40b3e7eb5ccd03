"""Opaque cursors: they round-trip, and anything else is a 422 naming ``cursor``."""

import pytest

from herald_api.errors import ValidationFailed
from herald_api.pagination import decode_cursor, encode_cursor, next_cursor
from herald_api.params import BIGINT_MAX


@pytest.mark.parametrize("last_id", [1, 42, 10**12, BIGINT_MAX])
def test_cursors_round_trip(last_id: int) -> None:
    cursor = encode_cursor(last_id)

    assert decode_cursor(cursor) == last_id
    assert "=" not in cursor


def test_no_cursor_starts_at_the_beginning() -> None:
    assert decode_cursor(None) == 0


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "aGVsbG8",
        "MA",
        "LTE",
        encode_cursor(BIGINT_MAX) + "x",
        "ÿ",
        "\x00",
        "OTIyMzM3MjAzNjg1NDc3NTgwOA",
    ],
)
def test_bad_cursors_name_the_cursor_field(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        decode_cursor(cursor)

    assert [field.field for field in raised.value.fields] == ["cursor"]


def test_next_cursor_only_when_there_is_more() -> None:
    assert next_cursor([1, 2, 3], limit=3) is None
    assert next_cursor([1, 2, 3, 4], limit=3) == encode_cursor(3)
    assert next_cursor([], limit=3) is None
