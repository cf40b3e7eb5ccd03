"""Every validation rule: a 422 in the one error shape that names the offending field."""

from typing import Any

import httpx
import pytest

from herald_api.validation import RATE_MESSAGE
from tests.integration.api.factories import client_body, mailing_body

CLIENTS = "/api/v1/clients"
MAILINGS = "/api/v1/mailings"
LONG_TEXT = "x" * 1001

BAD_CLIENTS: list[tuple[str, dict[str, Any], str]] = [
    ("phone too short", client_body(phone="7999123456"), "phone"),
    ("phone too long", client_body(phone="799912345678"), "phone"),
    ("phone not starting with 7", client_body(phone="89991234567"), "phone"),
    ("phone with a plus", client_body(phone="+79991234567"), "phone"),
    ("phone with letters", client_body(phone="7999123456a"), "phone"),
    ("phone with unicode digits", client_body(phone="7999123456٣"), "phone"),
    ("phone as a fraction", client_body(phone=79991234567.5), "phone"),
    ("phone as bool", client_body(phone=True), "phone"),
    ("phone null", client_body(phone=None), "phone"),
    ("phone as huge int", client_body(phone=10**40), "phone"),
    ("phone as object", client_body(phone={"n": 1}), "phone"),
    ("phone missing", {"timezone": "UTC"}, "phone"),
    ("operator code of 2 digits", client_body(operator_code="99"), "operator_code"),
    ("operator code of 4 digits", client_body(operator_code="9999"), "operator_code"),
    ("operator code with a letter", client_body(operator_code="9a9"), "operator_code"),
    ("operator code as int", client_body(operator_code=999), "operator_code"),
    ("timezone unknown", client_body(timezone="Mars/Olympus"), "timezone"),
    ("timezone empty", client_body(timezone=""), "timezone"),
    ("timezone as offset", client_body(timezone="+03:00"), "timezone"),
    ("timezone wrong case", client_body(timezone="europe/moscow"), "timezone"),
    ("timezone missing", {"phone": "79991234567"}, "timezone"),
    ("timezone as list", client_body(timezone=["UTC"]), "timezone"),
    ("tag empty", client_body(tag=""), "tag"),
    ("tag too long", client_body(tag="t" * 65), "tag"),
    ("tag with NUL", client_body(tag="a\x00b"), "tag"),
    ("tag as int", client_body(tag=5), "tag"),
    ("unknown field", client_body(nickname="bob"), "nickname"),
]


@pytest.mark.parametrize(
    ("body", "field"), [case[1:] for case in BAD_CLIENTS], ids=[case[0] for case in BAD_CLIENTS]
)
async def test_bad_client_is_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await api.post(CLIENTS, json=body)

    _assert_names(response, field)


BAD_CLIENT_PATCHES: list[tuple[str, dict[str, Any], str]] = [
    ("phone null", {"phone": None}, "phone"),
    ("timezone null", {"timezone": None}, "timezone"),
    ("operator code null", {"operator_code": None}, "operator_code"),
    ("bad phone", {"phone": "123"}, "phone"),
    ("unknown field", {"id": 5}, "id"),
]


@pytest.mark.parametrize(
    ("body", "field"),
    [case[1:] for case in BAD_CLIENT_PATCHES],
    ids=[case[0] for case in BAD_CLIENT_PATCHES],
)
async def test_bad_client_patch_is_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    client_id = (await api.post(CLIENTS, json=client_body())).json()["id"]

    response = await api.patch(f"{CLIENTS}/{client_id}", json=body)

    _assert_names(response, field)


BAD_MAILINGS: list[tuple[str, dict[str, Any], str]] = [
    ("text missing", {k: v for k, v in mailing_body().items() if k != "text"}, "text"),
    ("text empty", mailing_body(text=""), "text"),
    ("text blank", mailing_body(text=" \n\t "), "text"),
    ("text too long", mailing_body(text=LONG_TEXT), "text"),
    ("text with NUL", mailing_body(text="hi\x00"), "text"),
    ("text as number", mailing_body(text=42), "text"),
    ("start without offset", mailing_body(start_at="2030-01-01T09:00:00"), "start_at"),
    ("end without offset", mailing_body(end_at="2030-01-02T09:00:00"), "end_at"),
    ("start as garbage", mailing_body(start_at="soon"), "start_at"),
    ("start as a unix timestamp", mailing_body(start_at=1893456000), "start_at"),
    ("start as an impossible date", mailing_body(start_at="2030-02-30T09:00:00Z"), "start_at"),
    ("start null", mailing_body(start_at=None), "start_at"),
    (
        "end before start",
        mailing_body(start_at="2030-01-02T00:00:00Z", end_at="2030-01-01T00:00:00Z"),
        "end_at",
    ),
    (
        "end equal to start",
        mailing_body(start_at="2030-01-01T00:00:00Z", end_at="2030-01-01T03:00:00+03:00"),
        "end_at",
    ),
    ("end out of range after UTC", mailing_body(end_at="9999-12-31T23:00:00-05:00"), "end_at"),
    ("filter codes empty", mailing_body(filter={"operator_codes": []}), "filter.operator_codes"),
    (
        "filter code invalid",
        mailing_body(filter={"operator_codes": ["99"]}),
        "filter.operator_codes.0",
    ),
    (
        "filter code second invalid",
        mailing_body(filter={"operator_codes": ["999", "x"]}),
        "filter.operator_codes.1",
    ),
    ("filter tags empty", mailing_body(filter={"tags": []}), "filter.tags"),
    ("filter tag empty string", mailing_body(filter={"tags": [""]}), "filter.tags.0"),
    ("filter tags not a list", mailing_body(filter={"tags": "vip"}), "filter.tags"),
    ("filter unknown key", mailing_body(filter={"regions": ["x"]}), "filter.regions"),
    ("filter as a list", mailing_body(filter=["999"]), "filter"),
    (
        "window start == end",
        mailing_body(send_window={"start": "09:00", "end": "09:00"}),
        "send_window.end",
    ),
    (
        "window hour 24",
        mailing_body(send_window={"start": "24:00", "end": "09:00"}),
        "send_window.start",
    ),
    (
        "window with seconds",
        mailing_body(send_window={"start": "09:00", "end": "21:00:00"}),
        "send_window.end",
    ),
    (
        "window single digit hour",
        mailing_body(send_window={"start": "9:00", "end": "21:00"}),
        "send_window.start",
    ),
    ("window end missing", mailing_body(send_window={"start": "09:00"}), "send_window.end"),
    (
        "window unknown key",
        mailing_body(send_window={"start": "09:00", "end": "21:00", "tz": "UTC"}),
        "send_window.tz",
    ),
    ("max rate zero", mailing_body(max_rate=0), "max_rate"),
    ("max rate negative", mailing_body(max_rate=-1), "max_rate"),
    ("max rate a word", mailing_body(max_rate="fast"), "max_rate"),
    ("max rate a numeric string", mailing_body(max_rate="10"), "max_rate"),
    ("max rate a bool", mailing_body(max_rate=True), "max_rate"),
    ("max rate above the bound", mailing_body(max_rate=100_000.5), "max_rate"),
    ("max rate huge", mailing_body(max_rate=10**40), "max_rate"),
    ("max rate a list", mailing_body(max_rate=[5]), "max_rate"),
    ("unknown top-level field", mailing_body(priority=1), "priority"),
]


@pytest.mark.parametrize(
    ("body", "field"), [case[1:] for case in BAD_MAILINGS], ids=[case[0] for case in BAD_MAILINGS]
)
async def test_bad_mailing_is_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await api.post(MAILINGS, json=body)

    _assert_names(response, field)


BAD_MAILING_PATCHES: list[tuple[str, dict[str, Any], str]] = [
    ("text null", {"text": None}, "text"),
    ("start null", {"start_at": None}, "start_at"),
    ("end without offset", {"end_at": "2031-01-01T00:00:00"}, "end_at"),
    ("max rate zero", {"max_rate": 0}, "max_rate"),
    ("max rate negative", {"max_rate": -1}, "max_rate"),
    ("max rate a word", {"max_rate": "fast"}, "max_rate"),
    ("max rate above the bound", {"max_rate": 100_001}, "max_rate"),
    ("unknown field", {"status": "running"}, "status"),
]


@pytest.mark.parametrize(
    ("body", "field"),
    [case[1:] for case in BAD_MAILING_PATCHES],
    ids=[case[0] for case in BAD_MAILING_PATCHES],
)
async def test_bad_mailing_patch_is_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    mailing_id = (await api.post(MAILINGS, json=mailing_body())).json()["id"]

    response = await api.patch(f"{MAILINGS}/{mailing_id}", json=body)

    _assert_names(response, field)


BAD_QUERIES: list[tuple[str, str, dict[str, Any], str]] = [
    ("limit zero", CLIENTS, {"limit": 0}, "limit"),
    ("limit negative", CLIENTS, {"limit": -5}, "limit"),
    ("limit too big", CLIENTS, {"limit": 1001}, "limit"),
    ("limit huge", CLIENTS, {"limit": "9" * 40}, "limit"),
    ("limit not a number", MAILINGS, {"limit": "ten"}, "limit"),
    ("cursor garbage", CLIENTS, {"cursor": "!!!"}, "cursor"),
    ("cursor not base64 of an id", CLIENTS, {"cursor": "aGVsbG8"}, "cursor"),
    ("cursor of a huge id", MAILINGS, {"cursor": "OTk5OTk5OTk5OTk5OTk5OTk5OTk5"}, "cursor"),
    ("cursor of zero", "/api/v1/stats", {"cursor": "MA"}, "cursor"),
    ("cursor too long", CLIENTS, {"cursor": "M" * 100}, "cursor"),
    ("tag filter empty", CLIENTS, {"tag": ""}, "tag"),
    ("tag filter with NUL", CLIENTS, {"tag": "\x00"}, "tag"),
    ("operator code filter bad", CLIENTS, {"operator_code": "12"}, "operator_code"),
    ("mailing status unknown", MAILINGS, {"status": "halted"}, "status"),
    ("upsert not a boolean", f"{CLIENTS}/import", {"upsert": "maybe"}, "upsert"),
]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [case[1:] for case in BAD_QUERIES],
    ids=[case[0] for case in BAD_QUERIES],
)
async def test_bad_query_parameter_is_422_naming_it(
    api: httpx.AsyncClient, path: str, params: dict[str, Any], field: str
) -> None:
    method = "POST" if path.endswith("/import") else "GET"

    response = await api.request(
        method, path, params=params, content=b"", headers={"Content-Type": "text/csv"}
    )

    _assert_names(response, field)


BAD_PATH_IDS = ["abc", "0", "-1", "1.5", "9223372036854775808", "9" * 30]


@pytest.mark.parametrize("client_id", BAD_PATH_IDS)
async def test_bad_path_ids_are_422_naming_the_parameter(
    api: httpx.AsyncClient, client_id: str
) -> None:
    response = await api.get(f"{CLIENTS}/{client_id}")

    _assert_names(response, "client_id")


async def test_a_bad_message_status_filter_names_status(api: httpx.AsyncClient) -> None:
    mailing_id = (await api.post(MAILINGS, json=mailing_body())).json()["id"]

    response = await api.get(f"{MAILINGS}/{mailing_id}/messages", params={"status": "lost"})

    _assert_names(response, "status")


async def test_a_naive_datetime_message_says_the_offset_is_missing(api: httpx.AsyncClient) -> None:
    response = await api.post(MAILINGS, json=mailing_body(start_at="2030-01-01T09:00:00"))

    assert "offset is missing" in response.json()["error"]["fields"][0]["message"]
    assert "offset is missing" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "content",
    [b'{"max_rate": 0}', b'{"max_rate": -1}', b'{"max_rate": "fast"}', b'{"max_rate": NaN}'],
    ids=["zero", "negative", "word", "nan"],
)
async def test_a_bad_max_rate_says_what_it_must_be(api: httpx.AsyncClient, content: bytes) -> None:
    mailing_id = (await api.post(MAILINGS, json=mailing_body())).json()["id"]

    response = await api.patch(
        f"{MAILINGS}/{mailing_id}", content=content, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["error"]["fields"] == [{"field": "max_rate", "message": RATE_MESSAGE}]
    assert response.json()["error"]["message"] == f"max_rate: {RATE_MESSAGE}"


async def test_several_bad_fields_are_all_named(api: httpx.AsyncClient) -> None:
    response = await api.post(CLIENTS, json={"phone": "1", "timezone": "Nowhere", "tag": ""})

    assert response.status_code == 422
    fields = {field["field"] for field in response.json()["error"]["fields"]}
    assert fields == {"phone", "timezone", "tag"}
    assert response.json()["error"]["message"].startswith("3 invalid fields")


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"", "body"),
        (b"{", "body"),
        (b"[]", "body"),
        (b"null", "body"),
        (b'"text"', "body"),
        (b"42", "body"),
        (b"\xff\xfe\x00", "body"),
        (b"[" * 10_000, "body"),
        (b'{"phone": 1e999, "timezone": "UTC"}', "phone"),
        (b'{"phone": NaN, "timezone": "UTC"}', "phone"),
    ],
    ids=[
        "empty",
        "truncated",
        "array",
        "null",
        "string",
        "number",
        "invalid utf-8",
        "deep",
        "inf",
        "nan",
    ],
)
async def test_a_body_that_is_not_a_json_object_is_422(
    api: httpx.AsyncClient, content: bytes, field: str
) -> None:
    response = await api.post(
        CLIENTS, content=content, headers={"Content-Type": "application/json"}
    )

    _assert_names(response, field)


async def test_a_lone_surrogate_escape_is_422_not_a_database_error(
    api: httpx.AsyncClient,
) -> None:
    content = b'{"phone": "79991234567", "timezone": "UTC", "tag": "\\ud800"}'

    response = await api.post(
        CLIENTS, content=content, headers={"Content-Type": "application/json"}
    )

    _assert_names(response, "tag")


def _assert_names(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in [item["field"] for item in error["fields"]], error
    assert error["message"]
