"""The admin login is all or nothing: an issuer needs a client and a session secret."""

from typing import Any

import pytest
from pydantic import ValidationError

from herald_api.admin_settings import AdminSettings
from herald_api.settings import ApiSettings

COMPLETE: dict[str, Any] = {
    "admin_oidc_issuer": "https://login.example",
    "admin_oidc_client_id": "herald",
    "admin_oidc_client_secret": "client-secret",
    "admin_session_secret": "s" * 32,
}


def test_without_an_issuer_nothing_else_is_needed() -> None:
    settings = AdminSettings(_env_file=None)

    assert settings.admin_oidc_issuer is None
    assert settings.admin_cookie_secure is True


def test_a_complete_configuration_loads_into_the_api_settings() -> None:
    settings = ApiSettings(_env_file=None, **COMPLETE)

    assert settings.admin_oidc_client_id == "herald"
    assert settings.admin_session_secret is not None
    assert "s" * 32 not in repr(settings)


@pytest.mark.parametrize(
    "missing", ["admin_oidc_client_id", "admin_oidc_client_secret", "admin_session_secret"]
)
def test_an_issuer_without_the_rest_refuses_to_load(missing: str) -> None:
    values = {name: value for name, value in COMPLETE.items() if name != missing}

    with pytest.raises(ValidationError, match=f"HERALD_{missing.upper()} is not"):
        AdminSettings(_env_file=None, **values)


def test_a_short_session_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        AdminSettings(_env_file=None, **(COMPLETE | {"admin_session_secret": "short"}))


def test_the_settings_read_herald_admin_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in COMPLETE.items():
        monkeypatch.setenv(f"HERALD_{name.upper()}", value)
    monkeypatch.setenv("HERALD_ADMIN_COOKIE_SECURE", "false")

    settings = AdminSettings(_env_file=None)

    assert settings.admin_oidc_issuer == "https://login.example"
    assert settings.admin_cookie_secure is False
