"""Each pattern the OpenAPI document states agrees with the Python rule that enforces it,
string by string: what the pattern allows is accepted, and nothing else is."""

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import async_sessionmaker

from herald_api.clients import csv_header
from herald_api.clients.importer import MAX_LINE_BYTES, ClientImport, CsvRows
from herald_api.errors import ValidationFailed
from herald_api.validation import MAX_RATE_LIMIT, MailingText, MessageRate, Phone, Tag

# str.isspace() characters, NUL and a few ordinary ones: where the rules have their edges.
EDGES = st.sampled_from(
    ["\x00", " ", "\t", "\n", "\x1c", "\x85", "\xa0", "\u2003", "\u3000", "\ufeff", "a", "é"]
)
# Without lone surrogates: the validator refuses them (they cannot be stored as UTF-8),
# which no JSON Schema pattern can say; test_a_lone_surrogate_is_refused covers them.
TEXTS = st.lists(st.one_of(EDGES, st.characters(exclude_categories=["Cs"])), max_size=8).map(
    "".join
)


def _schema(adapter: TypeAdapter[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = adapter.json_schema()
    return schema


def _string_schema_allows(schema: dict[str, Any], value: str) -> bool:
    return (
        schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value))
        and re.search(schema.get("pattern", ""), value) is not None
    )


def _accepts(adapter: TypeAdapter[Any], value: object) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("rule", [Tag, MailingText], ids=["tag", "mailing text"])
@given(text=TEXTS)
def test_string_patterns_agree_with_their_validators(rule: Any, text: str) -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(rule)

    assert _string_schema_allows(_schema(adapter), text) == _accepts(adapter, text)


@pytest.mark.parametrize("rule", [Tag, MailingText], ids=["tag", "mailing text"])
def test_a_lone_surrogate_is_refused(rule: Any) -> None:
    assert not _accepts(TypeAdapter(rule), "a\ud800b")


@given(phone=st.one_of(st.integers(69_999_999_990, 80_000_000_010), st.floats(7e10, 8e10)))
def test_the_phone_schema_allows_exactly_the_numbers_accepted(phone: float) -> None:
    adapter: TypeAdapter[str] = TypeAdapter(Phone)
    (_, as_integer) = _schema(adapter)["anyOf"]
    # JSON Schema's "integer" is any number without a fraction, 79991234567.0 included.
    allowed = float(phone).is_integer() and as_integer["minimum"] <= phone <= as_integer["maximum"]

    assert allowed == _accepts(adapter, phone)


# JSON has no NaN, so neither the schema nor a generated body has one to agree on.
RATES = st.one_of(
    st.floats(allow_nan=False),
    st.floats(-1.0, MAX_RATE_LIMIT + 1.0, allow_nan=False),
    st.integers(-2, 2),
    st.integers(MAX_RATE_LIMIT - 2, MAX_RATE_LIMIT + 2),
    st.sampled_from(
        [0.0, -0.0, 5e-324, 0.01, 0.0099, float(MAX_RATE_LIMIT), True, None, "10", [1]]
    ),
)


@given(rate=RATES)
def test_the_rate_schema_allows_exactly_the_rates_accepted(rate: object) -> None:
    adapter: TypeAdapter[float] = TypeAdapter(MessageRate)
    allowed = Draft202012Validator(_schema(adapter)).is_valid(rate)

    assert allowed == _accepts(adapter, rate)


# Each list repeats the harmless choices, so that most headers come out acceptable.
PADDING = st.sampled_from(["", "", "", "", " ", "\t", " \t ", " " * 64, " " * 65])
QUOTING = st.sampled_from(["{}", "{}", "{}", "{}", "{}", '"{}"', '"{}"', '"{}', ' "{}"', '""{}""'])
NOT_COLUMNS = st.sampled_from(["region", "", "phone_", "tag tag", "pho\u0130ne"])


@st.composite
def header_lines(draw: st.DrawFn) -> str:
    """Mostly headers the import accepts, each with one chance of going wrong."""
    optional = [name for name in csv_header.COLUMNS if name not in csv_header.REQUIRED]
    chosen = [*csv_header.REQUIRED, *draw(st.lists(st.sampled_from(optional), unique=True))]
    names = list(draw(st.permutations(chosen)))
    mistake = draw(st.integers(0, 5))
    if mistake == 1:
        names.pop(draw(st.integers(0, len(names) - 1)))
    elif mistake == 2:
        extra = draw(st.one_of(NOT_COLUMNS, st.sampled_from(names)))
        names.insert(draw(st.integers(0, len(names))), extra)
    cells = []
    for name in names:
        spelled = "".join(char.upper() if draw(st.booleans()) else char for char in name)
        cells.append(draw(PADDING) + draw(QUOTING).format(spelled) + draw(PADDING))
    return draw(st.sampled_from(["", "\ufeff"])) + ",".join(cells)


@st.composite
def csv_bodies(draw: st.DrawFn) -> str:
    # Lines before the header: blank ones are skipped, the last two are not blank.
    before = st.sampled_from(["", " ", "\r", "\t\x0b\x0c", "", " ", "\r", "\ufeff", "x"])
    blank = draw(st.lists(before, max_size=2))
    header = draw(st.one_of(header_lines(), header_lines(), header_lines(), st.text(max_size=12)))
    # Data lines that never reach the database: the importer rejects them itself.
    rest = draw(st.sampled_from(["", "\n", "\r\n", "\r", "\r\r\n", "\nnot,a,client,row,at,all\n"]))
    return "".join(f"{line}\n" for line in blank) + header + rest


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    yield body


def _import_accepts(body: str) -> bool:
    job = ClientImport(async_sessionmaker(), rows=CsvRows(), upsert=False, on_commit=lambda: None)
    try:
        asyncio.run(job.run(_chunks(body.encode())))
    except ValidationFailed:
        return False
    return True


@given(body=csv_bodies())
def test_the_csv_body_pattern_allows_exactly_the_bodies_the_import_reads(body: str) -> None:
    pattern = csv_header.body_pattern(MAX_LINE_BYTES)

    assert (re.search(pattern, body) is not None) == _import_accepts(body)


def test_an_overlong_blank_line_before_the_header_is_in_neither() -> None:
    body = " " * (MAX_LINE_BYTES + 1) + "\nphone,timezone\n"

    assert re.search(csv_header.body_pattern(MAX_LINE_BYTES), body) is None
    assert not _import_accepts(body)


def test_the_header_pattern_is_a_usable_size() -> None:
    assert len(csv_header.body_pattern(MAX_LINE_BYTES)) < 8_000
