"""Idempotency keys without a database: the key's pattern, the fingerprint, what is kept."""

import re
from datetime import timedelta
from typing import Any, cast

import pytest
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import MutableHeaders

from herald_api.idempotency import repository
from herald_api.idempotency.service import KEY_PATTERN, Claim, Fingerprint, Idempotency


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("a", True),
        ("~" * 255, True),
        ("inner spaces are kept", True),
        ("5f0c6d1e-8a47-4f0e-9a51-2b8e7c3d9f10", True),
        ("", False),
        (" leading", False),
        ("trailing ", False),
        (" ", False),
        ("tab\tinside", False),
        ("caf\u00e9", False),
        ("del\x7f", False),
    ],
)
def test_a_key_is_printable_ascii_not_opening_or_closing_with_a_space(
    key: str, valid: bool
) -> None:
    assert bool(re.fullmatch(KEY_PATTERN, key)) is valid


def _digest(body: list[bytes], **overrides: str) -> str:
    parts = {
        "method": "POST",
        "path": "/api/v1/clients/import",
        "query": "upsert=false",
        "content_type": "text/csv",
    }
    fingerprint = Fingerprint(**(parts | overrides))
    for chunk in body:
        fingerprint.update(chunk)
    return fingerprint.hexdigest()


def test_the_fingerprint_does_not_depend_on_how_the_body_is_cut() -> None:
    assert _digest([b"phone,timezone\n", b"7999"]) == _digest([b"phone,tim", b"ezone\n7999"])


@pytest.mark.parametrize(
    "overrides",
    [
        {"method": "PUT"},
        {"path": "/api/v1/clients"},
        {"query": "upsert=true"},
        {"content_type": "application/x-ndjson"},
    ],
)
def test_every_part_of_the_request_changes_the_fingerprint(overrides: dict[str, str]) -> None:
    assert _digest([b"body"], **overrides) != _digest([b"body"])


def test_the_body_changes_the_fingerprint() -> None:
    assert _digest([b"body"]) != _digest([b"body "])


class _Created(BaseModel):
    id: int


async def test_a_remembered_response_keeps_its_location_and_content_type_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    saved: dict[str, Any] = {}

    async def no_expired(*_args: object) -> int:
        return 0

    async def save(_session: object, **values: Any) -> bool:
        saved.update(values)
        return True

    monkeypatch.setattr(repository, "delete_expired", no_expired)
    monkeypatch.setattr(repository, "save", save)
    headers = MutableHeaders({"Location": "/api/v1/clients/7", "X-Correlation-ID": "abc"})
    held = Claim(api_key_id=3, key="k", ttl=timedelta(hours=1))
    guard = Idempotency(cast(AsyncSession, None), held, "f" * 64, 201, headers)

    result = await guard.remember(_Created(id=7))

    assert result == _Created(id=7)
    assert saved["headers"] == {"content-type": "application/json", "location": "/api/v1/clients/7"}
    assert saved["body"] == '{"id":7}'
    assert (saved["api_key_id"], saved["key"], saved["status_code"]) == (3, "k", 201)


async def test_without_a_key_nothing_is_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    async def save(*_args: object, **_values: object) -> bool:
        raise AssertionError("nothing to store without a key")

    monkeypatch.setattr(repository, "save", save)
    guard = Idempotency(cast(AsyncSession, None), None, "", 201, MutableHeaders())

    assert await guard.remember(_Created(id=1)) == _Created(id=1)
