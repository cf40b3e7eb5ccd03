"""Reading a send request's body against the API's contract: ``{"id", "phone", "text"}``."""

from __future__ import annotations

from typing import Final, NamedTuple

import orjson

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
PHONE_MIN: Final = 70_000_000_000
PHONE_MAX: Final = 79_999_999_999


class SendRequest(NamedTuple):
    """What a request carried; a field is None when absent or of the wrong type."""

    msg_id: int | None
    phone: int | None
    text: str | None
    problem: str | None  # why the API would answer 400, or None when the body is valid


def _int64(value: object) -> int | None:
    # bool is an int to Python but never one in the API's JSON.
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return value
    return None


def parse_send_request(body: bytes, path_id: int) -> SendRequest:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return SendRequest(None, None, None, "body: must be JSON")
    if type(payload) is not dict:
        return SendRequest(None, None, None, "body: must be a JSON object")
    msg_id = _int64(payload.get("id"))
    phone = _int64(payload.get("phone"))
    text = payload.get("text")
    if type(text) is not str:
        text = None
    problem = None
    if msg_id is None:
        problem = "id: must be a 64-bit integer"
    elif msg_id != path_id:
        problem = "id: must equal the msgId in the path"
    elif phone is None or not PHONE_MIN <= phone <= PHONE_MAX:
        problem = "phone: must be an integer of 11 digits starting with 7"
    elif text is None:
        problem = "text: must be a string"
    return SendRequest(msg_id, phone, text, problem)
