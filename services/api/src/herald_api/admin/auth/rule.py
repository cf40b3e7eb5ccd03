"""Who is an admin: a pure decision on the claims the provider vouched for."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from herald_api.admin_settings import AdminSettings, comma_separated


@dataclass(frozen=True)
class AdminRule:
    """A user is an admin when ``claim`` holds one of ``values``, or when their verified
    email is in one of ``email_domains``."""

    claim: str
    values: frozenset[str]
    email_domains: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: AdminSettings) -> "AdminRule":
        return cls(
            claim=settings.admin_oidc_admin_claim,
            values=frozenset(comma_separated(settings.admin_oidc_admin_values)),
            email_domains=frozenset(
                domain.lower().lstrip("@")
                for domain in comma_separated(settings.admin_oidc_admin_email_domains)
            ),
        )

    def admits(self, claims: Mapping[str, Any]) -> bool:
        held = claim_values(claims, self.claim)
        if not held.isdisjoint(self.values):
            return True
        return bool(self.email_domains) and verified_email_domain(claims) in self.email_domains


def claim_values(claims: Mapping[str, Any], name: str) -> set[str]:
    """The claim's values as strings: a list's items, or the single value.

    ``name`` is looked up whole first (providers namespace claims with URLs, dots and
    all), then as a dotted path into nested objects (Keycloak's ``realm_access.roles``).
    """
    value = claims.get(name)
    if value is None and "." in name:
        value = claims
        for part in name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    items = value if isinstance(value, list | tuple) else [value]
    return {_as_text(item) for item in items if isinstance(item, str | bool | int)}


def verified_email_domain(claims: Mapping[str, Any]) -> str | None:
    """The domain of the email, only if the provider says it verified it.

    An unverified address proves nothing: some providers let users type any.
    """
    email = claims.get("email")
    verified = claims.get("email_verified")
    if not isinstance(email, str) or "@" not in email or verified not in (True, "true"):
        return None
    return email.rsplit("@", 1)[1].lower()


def _as_text(value: str | bool | int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
