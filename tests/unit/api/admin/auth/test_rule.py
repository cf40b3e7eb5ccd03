"""Who is an admin: the claim rule and the verified-email-domain rule."""

from typing import Any

import pytest

from herald_api.admin.auth.rule import AdminRule, claim_values
from herald_api.admin_settings import AdminSettings

GROUPS = AdminRule(claim="groups", values=frozenset({"admins", "ops"}))


@pytest.mark.parametrize(
    ("claims", "admitted"),
    [
        ({"groups": ["users", "admins"]}, True),
        ({"groups": ["ops"]}, True),
        ({"groups": "admins"}, True),
        ({"groups": ["users"]}, False),
        ({"groups": "admins-but-longer"}, False),
        ({"groups": ["Admins"]}, False),
        ({"groups": []}, False),
        ({"groups": [{"name": "admins"}]}, False),
        ({}, False),
    ],
)
def test_a_claim_value_makes_an_admin(claims: dict[str, Any], admitted: bool) -> None:
    assert GROUPS.admits(claims) is admitted


def test_a_dotted_claim_reaches_into_objects_and_a_dotted_name_is_tried_whole_first() -> None:
    keycloak = AdminRule(claim="realm_access.roles", values=frozenset({"herald-admin"}))
    auth0 = AdminRule(claim="https://herald.example/roles", values=frozenset({"admin"}))

    assert keycloak.admits({"realm_access": {"roles": ["herald-admin"]}})
    assert not keycloak.admits({"realm_access": ["herald-admin"]})
    assert auth0.admits({"https://herald.example/roles": ["admin"]})
    assert claim_values({"a": {"b": True}}, "a.b") == {"true"}


def test_an_email_domain_admits_only_verified_addresses() -> None:
    rule = AdminRule(claim="groups", values=frozenset(), email_domains=frozenset({"herald.io"}))

    assert rule.admits({"email": "ada@Herald.IO", "email_verified": True})
    assert rule.admits({"email": "ada@herald.io", "email_verified": "true"})
    assert not rule.admits({"email": "ada@herald.io"})
    assert not rule.admits({"email": "ada@herald.io", "email_verified": False})
    assert not rule.admits({"email": "ada@herald.io.evil", "email_verified": True})
    assert not rule.admits({"email": "ada@evil.io", "email_verified": True})


def test_the_rule_is_read_from_comma_separated_settings() -> None:
    settings = AdminSettings(
        _env_file=None,
        admin_oidc_admin_claim="roles",
        admin_oidc_admin_values=" admin , operator,,",
        admin_oidc_admin_email_domains="@Herald.io, example.org",
    )

    rule = AdminRule.from_settings(settings)

    assert rule == AdminRule(
        claim="roles",
        values=frozenset({"admin", "operator"}),
        email_domains=frozenset({"herald.io", "example.org"}),
    )


def test_with_no_values_the_claim_admits_nobody() -> None:
    rule = AdminRule.from_settings(AdminSettings(_env_file=None, admin_oidc_admin_values=""))

    assert not rule.admits({"groups": [""]})
    assert not rule.admits({"groups": ["admins"]})
