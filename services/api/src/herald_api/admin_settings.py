"""``HERALD_ADMIN_*`` settings: the OpenID Connect provider, who is an admin, the session.

The api's ``ApiSettings`` inherits them. The admin UI is on when the issuer is set;
then the client and the session secret must be set too, or the settings refuse to
load, so that a half-configured login never starts.

This module belongs to the admin login (``herald_api.admin.auth``) but lives outside
the ``herald_api.admin`` package: ``herald_api.settings`` imports it, and importing
anything under ``herald_api.admin`` first runs that package's ``__init__``, which
imports the pages, which import ``herald_api.settings``: a cycle. It imports nothing
but pydantic, so that the admin CLI still loads its settings quickly.
"""

from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_LENGTH = 32


def comma_separated(value: str) -> tuple[str, ...]:
    """``"a, b,,c"`` as ``("a", "b", "c")``."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


class AdminSettings(BaseSettings):
    """How operators log in to ``/admin``."""

    model_config = SettingsConfigDict(
        env_prefix="HERALD_", env_file=".env", extra="ignore", frozen=True
    )

    admin_oidc_issuer: str | None = Field(
        default=None,
        description="Issuer URL of the OpenID Connect provider operators log in with "
        "(discovery at {issuer}/.well-known/openid-configuration). Unset: the admin UI is off "
        "and /admin answers 404.",
    )
    admin_oidc_client_id: str | None = Field(
        default=None, description="herald's client id at the provider (required with the issuer)."
    )
    admin_oidc_client_secret: SecretStr | None = Field(
        default=None,
        description="herald's client secret at the provider (required with the issuer).",
    )
    admin_oidc_scopes: str = Field(
        default="openid profile email groups",
        description="Scopes asked for at login, space-separated. `groups` makes Canaille and "
        "Keycloak (with a `groups` client scope) put the user's groups into the ID token; "
        "Google and Azure AD reject it: use `openid profile email` there.",
    )
    admin_oidc_admin_claim: str = Field(
        default="groups",
        description="ID token or userinfo claim that makes a user an admin; a dotted path "
        "reaches inside objects, e.g. `realm_access.roles` on Keycloak.",
    )
    admin_oidc_admin_values: str = Field(
        default="admins",
        description="Comma-separated values of that claim, any one of which makes an admin "
        "(the claim may be a string or a list). Empty: the claim admits nobody.",
    )
    admin_oidc_admin_email_domains: str = Field(
        default="",
        description="Comma-separated email domains whose users are admins too, when the "
        "provider marks the email verified (`email_verified`). Empty: no domain rule.",
    )
    admin_session_secret: SecretStr | None = Field(
        default=None,
        description=f"Key that signs the admin session cookie, at least {MIN_SECRET_LENGTH} "
        "characters (`openssl rand -hex 32`); required with the issuer. Changing it ends "
        "every session.",
    )
    admin_session_ttl: int = Field(
        default=28_800,
        ge=60,
        description="Seconds an admin session lasts after login; the expiry is signed into "
        "the cookie and checked on every request.",
    )
    admin_cookie_secure: bool = Field(
        default=True,
        description="Send the admin session cookie over HTTPS only. Local development over "
        "plain http sets false.",
    )
    admin_public_url: str | None = Field(
        default=None,
        description="The admin UI's external URL (e.g. https://herald.example.com/admin) "
        "when a proxy changes the scheme, host or path; {url}/callback is the redirect URI "
        "to register. Unset: taken from each request.",
    )

    @model_validator(mode="after")
    def _login_is_complete(self) -> Self:
        if self.admin_oidc_issuer is None:
            return self
        missing = [
            f"HERALD_{name.upper()}"
            for name in ("admin_oidc_client_id", "admin_oidc_client_secret", "admin_session_secret")
            if not _given(getattr(self, name))
        ]
        if missing:
            raise ValueError(
                f"HERALD_ADMIN_OIDC_ISSUER is set, so the admin UI is on, but "
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not: set "
                f"{'it' if len(missing) == 1 else 'them'}, or unset the issuer to turn the "
                "admin UI off"
            )
        secret = self.admin_session_secret
        if secret is not None and len(secret.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"HERALD_ADMIN_SESSION_SECRET must be at least {MIN_SECRET_LENGTH} characters "
                "(e.g. `openssl rand -hex 32`)"
            )
        return self


def _given(value: str | SecretStr | None) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value())
    return bool(value)
