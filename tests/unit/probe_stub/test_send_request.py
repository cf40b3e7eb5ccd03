"""A send request's body checked against the API's contract."""

import orjson
import pytest

from herald_probe_stub.send_request import SendRequest, parse_send_request


def _body(**fields: object) -> bytes:
    return orjson.dumps(fields)


def test_a_valid_body_parses_without_a_problem() -> None:
    parsed = parse_send_request(_body(id=42, phone=79001234567, text="Hello"), path_id=42)

    assert parsed == SendRequest(42, 79001234567, "Hello", None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[1, 2]", "body"),
        (_body(phone=79001234567, text="t"), "id"),
        (_body(id="42", phone=79001234567, text="t"), "id"),
        (_body(id=True, phone=79001234567, text="t"), "id"),
        (_body(id=41, phone=79001234567, text="t"), "id"),
        (b'{"id": 18446744073709551615, "phone": 79001234567, "text": "t"}', "id"),
        (_body(id=42, text="t"), "phone"),
        (_body(id=42, phone="79001234567", text="t"), "phone"),
        (_body(id=42, phone=89001234567, text="t"), "phone"),
        (_body(id=42, phone=7900123456, text="t"), "phone"),
        (_body(id=42, phone=790012345678, text="t"), "phone"),
        (_body(id=42, phone=79001234567.0, text="t"), "phone"),
        (_body(id=42, phone=79001234567), "text"),
        (_body(id=42, phone=79001234567, text=5), "text"),
    ],
)
def test_a_bad_body_names_the_field_at_fault(body: bytes, field: str) -> None:
    problem = parse_send_request(body, path_id=42).problem

    assert problem is not None
    assert problem.startswith(f"{field}: ")


def test_well_typed_fields_are_kept_even_when_the_body_is_bad() -> None:
    parsed = parse_send_request(_body(id=41, phone=79001234567, text=7), path_id=42)

    assert parsed.msg_id == 41
    assert parsed.phone == 79001234567
    assert parsed.text is None
    assert parsed.problem is not None
