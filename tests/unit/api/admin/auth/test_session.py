"""The session cookie's codec and the login's return address."""

import time

import pytest

from herald_api.admin.auth.dependencies import safe_next
from herald_api.admin.auth.session import SessionCodec, is_admin_path

SECRET = "a-unit-test-secret-that-is-long-enough"


def test_a_session_round_trips_and_another_key_cannot_read_it() -> None:
    codec = SessionCodec(SECRET, max_age=60)
    value = codec.encode({"operator": {"sub": "ada"}, "exp": time.time() + 60})

    assert codec.decode(value)["operator"] == {"sub": "ada"}
    assert SessionCodec(SECRET + "!", max_age=60).decode(value) == {}
    assert codec.decode(value[:-1] + ("A" if value[-1] != "A" else "B")) == {}
    assert codec.decode("not a cookie") == {}
    assert codec.decode(None) == {}


def test_the_expiry_in_the_content_is_enforced_whatever_the_signature_says() -> None:
    codec = SessionCodec(SECRET, max_age=3600)
    value = codec.encode({"operator": {"sub": "ada"}, "exp": 1_000})

    assert codec.decode(value, now=999) != {}
    assert codec.decode(value, now=1_000) == {}
    assert codec.decode(codec.encode({"exp": "tomorrow"})) == {}


def test_a_cookie_signed_longer_ago_than_max_age_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    codec = SessionCodec(SECRET, max_age=60)
    value = codec.encode({"next": "/admin"})
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)

    assert codec.decode(value) == {}


@pytest.mark.parametrize(
    ("path", "under"),
    [
        ("/admin", True),
        ("/admin/", True),
        ("/admin/mailings", True),
        ("/administrator", False),
        ("/api/v1/clients", False),
        ("/", False),
    ],
)
def test_only_admin_paths_have_a_session(path: str, under: bool) -> None:
    assert is_admin_path(path) is under


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (None, "/admin"),
        ("/admin/mailings?status=running", "/admin/mailings?status=running"),
        ("/admin", "/admin"),
        ("https://evil.example/admin", "/admin"),
        ("//evil.example/admin", "/admin"),
        ("/\\evil.example", "/admin"),
        ("/administrator", "/admin"),
        ("/api/v1/clients", "/admin"),
        ("javascript:alert(1)", "/admin"),
    ],
)
def test_the_login_returns_only_to_admin_paths(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected
