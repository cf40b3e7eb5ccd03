"""The importer's streaming line splitter and row parsers, without a database."""

from collections.abc import AsyncIterator

import pytest

from herald_api.clients.importer import (
    MAX_LINE_BYTES,
    CsvRows,
    NdjsonRows,
    NumberedLine,
    RowRejected,
    numbered_lines,
)
from herald_api.errors import ValidationFailed


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _lines(*parts: bytes) -> list[NumberedLine]:
    return [line async for batch in numbered_lines(_chunks(*parts)) for line in batch]


async def test_lines_split_across_chunks_are_joined_and_numbered() -> None:
    lines = await _lines(b"a,b\nc", b"d,e\r\n", b"", b"\nlast")

    assert lines == [(1, b"a,b"), (2, b"cd,e\r"), (3, b""), (4, b"last")]


async def test_a_trailing_newline_adds_no_line() -> None:
    assert await _lines(b"one\ntwo\n") == [(1, b"one"), (2, b"two")]


async def test_an_overlong_line_is_reported_once_and_the_next_line_survives() -> None:
    big = b"x" * (MAX_LINE_BYTES + 10)

    lines = await _lines(b"ok\n", big[:9000], big[9000:], b"x" * 5000, b"\nnext\n")

    assert lines == [(1, b"ok"), (2, None), (3, b"next")]


async def test_an_overlong_last_line_is_reported() -> None:
    assert await _lines(b"ok\n" + b"x" * (MAX_LINE_BYTES + 1)) == [(1, b"ok"), (2, None)]


def test_csv_header_in_any_order_with_a_bom_and_optional_columns_left_empty() -> None:
    rows = CsvRows()
    rows.read_header("\ufeffTimezone , phone,tag".encode())

    assert rows.parse(b"UTC,79991234567,") == {"timezone": "UTC", "phone": "79991234567"}
    assert rows.parse(b'UTC,79991234567,"a, b"') == {
        "timezone": "UTC",
        "phone": "79991234567",
        "tag": "a, b",
    }


@pytest.mark.parametrize(
    "header",
    [b"phone", b"timezone,tag", b"phone,timezone,region", b"phone,timezone,phone", b"\xff", None],
)
def test_a_bad_header_names_the_header(header: bytes | None) -> None:
    with pytest.raises(ValidationFailed) as raised:
        CsvRows().read_header(header)

    assert raised.value.fields[0].field == "header"


@pytest.mark.parametrize("line", [b"79991234567", b"a,b,c", b'"open,UTC', b"\xff\xfe,UTC"])
def test_unreadable_csv_rows_are_rejected_as_a_whole(line: bytes) -> None:
    rows = CsvRows()
    rows.read_header(b"phone,timezone")

    with pytest.raises(RowRejected) as raised:
        rows.parse(line)

    assert raised.value.field is None


def test_an_empty_csv_body_has_no_header() -> None:
    with pytest.raises(ValidationFailed):
        CsvRows().finish()


@pytest.mark.parametrize("line", [b"[1]", b"nope", b'"string"', b"\xff", b'{"a": 1'])
def test_ndjson_lines_must_be_objects(line: bytes) -> None:
    with pytest.raises(RowRejected):
        NdjsonRows().parse(line)


def test_ndjson_objects_pass_through() -> None:
    assert NdjsonRows().parse(b'{"phone": 79991234567}') == {"phone": 79991234567}
