"""Opaque cursors: they round-trip, the documented pattern says exactly which strings are
cursors, and anything else is a 422 naming ``cursor``."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald_api.errors import ValidationFailed
from herald_api.pagination import CURSOR_PATTERN, decode_cursor, encode_cursor, next_cursor
from herald_api.params import BIGINT_MAX


@pytest.mark.parametrize("last_id", [0, 1, 42, 10**12, BIGINT_MAX])
def test_cursors_round_trip(last_id: int) -> None:
    cursor = encode_cursor(last_id)

    assert decode_cursor(cursor) == last_id
    assert re.fullmatch(CURSOR_PATTERN, cursor)


@given(st.integers(min_value=0, max_value=BIGINT_MAX))
def test_every_id_has_a_cursor_of_the_documented_pattern(last_id: int) -> None:
    assert re.fullmatch(CURSOR_PATTERN, encode_cursor(last_id))
    assert decode_cursor(encode_cursor(last_id)) == last_id


CURSOR_LIKE = st.text(
    alphabet=st.sampled_from("AEIMQUYcgkoswf048_-=!/+ÿ\x00Zza9"), min_size=0, max_size=13
)


@given(st.one_of(CURSOR_LIKE, st.text(max_size=13)))
def test_a_string_is_read_as_a_cursor_exactly_when_the_pattern_allows_it(text: str) -> None:
    """The OpenAPI document's pattern and the API agree on every string."""
    try:
        decode_cursor(text)
    except ValidationFailed:
        readable = False
    else:
        readable = True

    assert readable == bool(re.search(CURSOR_PATTERN, text))


def test_no_cursor_starts_at_the_beginning() -> None:
    assert decode_cursor(None) == 0


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "aGVsbG8",
        "MTIzNA",
        encode_cursor(BIGINT_MAX) + "x",
        "gAAAAAAAAAA",
        "AAAAAAAAAAB",
        "AAAAAAAAAA=",
        "ÿ",
        "\x00",
        "0" * 63,
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
