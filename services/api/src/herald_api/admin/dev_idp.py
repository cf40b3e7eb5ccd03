"""A real OpenID Connect provider for development and tests: Canaille, in-process.

``python -m herald_api.admin.dev_idp --port 8091`` serves Canaille on 127.0.0.1 with
an admin user, a user who is not an admin, the ``admins`` group and the herald
client, and prints the logins and the ``HERALD_ADMIN_OIDC_*`` values for the api.
It is a provider, not a mock: discovery, RS256-signed ID tokens, its own login
form, PKCE required on every authorization code, RP-initiated logout.

Canaille and its memory backend come with the dev dependency pytest-iam; the
configuration follows ``pytest_iam.iam_configuration``. pytest-iam's own ``Server``
is not used: it serves with wsgiref, one request at a time and bound to
"localhost", while a browser loading the login page wants a threaded server on the
address the issuer names. Canaille keeps its backend in a class attribute, so a
process runs one provider at a time.
"""

import argparse
import contextlib
import datetime
import secrets
import sys
import threading
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

DEFAULT_PORT = 8091
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8000/admin/callback"
ADMIN_GROUP = "admins"
CLIENT_ID = "herald"
CLIENT_SCOPES = ("openid", "profile", "email", "groups")
_MISSING = (
    "the development identity provider needs Canaille, which the dev dependency "
    "pytest-iam brings: run `uv sync` (dev dependencies are included by default)"
)


@dataclass(frozen=True)
class Login:
    """A seeded account: what to type into the provider's login form."""

    username: str
    password: str
    email: str
    name: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class ClientRegistration:
    """The herald client as the provider knows it."""

    client_id: str
    client_secret: str
    redirect_uri: str
    post_logout_redirect_uri: str


@dataclass(frozen=True)
class Seeded:
    """Everything ``seed`` created."""

    admin: Login
    user: Login
    client: ClientRegistration


def _canaille() -> ModuleType:
    try:
        import canaille  # type: ignore[import-untyped]
    except ImportError as error:
        raise RuntimeError(_MISSING) from error
    module: ModuleType = canaille
    return module


def canaille_configuration(issuer_host: str, trusted_hosts: tuple[str, ...]) -> dict[str, Any]:
    """Canaille's settings: in memory, no registration, and only OIDC allowed to users.

    Clients whose ``client_uri`` is on a trusted host skip the consent page, and may be
    sent back to a registered ``post_logout_redirect_uri`` without an ``id_token_hint``.
    """
    from joserfc.jwk import RSAKey

    # A fresh signing key per start: tokens from an earlier run must not verify.
    key = RSAKey.generate_key(2048)
    key.ensure_kid()
    return {
        "SECRET_KEY": secrets.token_urlsafe(32),
        "SERVER_NAME": issuer_host,
        "PREFERRED_URL_SCHEME": "http",
        "CANAILLE": {
            "NAME": "herald development login",
            "DATABASE": "memory",
            "ENABLE_REGISTRATION": False,
            "ENABLE_PASSWORD_RECOVERY": False,
            "JAVASCRIPT": False,
            # Users may log in through OIDC and nothing else: not even edit their own
            # groups, which would let the non-admin make themselves an admin.
            "ACL": {"DEFAULT": {"PERMISSIONS": ["use_oidc"], "READ": ["user_name"]}},
            "LOGGING": {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"canaille": {"class": "logging.NullHandler"}},
                "loggers": {"canaille": {"level": "WARNING", "handlers": ["canaille"]}},
            },
        },
        "CANAILLE_OIDC": {
            "DYNAMIC_CLIENT_REGISTRATION_OPEN": False,
            "REQUIRE_NONCE": True,
            "TRUSTED_DOMAINS": list(trusted_hosts),
            "ACTIVE_JWKS": [key.as_dict(private=True)],
        },
    }


class DevIdentityProvider:
    """Canaille served by a threaded werkzeug server in a background thread.

    Use it as a context manager; ``port=0`` picks a free port. The issuer is
    ``http://{host}:{port}``, exactly as discovery and the ID tokens name it.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        trusted_hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
        access_log: bool = False,
    ) -> None:
        canaille = _canaille()
        from werkzeug.serving import WSGIRequestHandler, make_server

        class RequestHandler(WSGIRequestHandler):
            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                if access_log:
                    super().log_request(code, size)

        # Bound before Canaille exists: with port 0 the issuer needs the port picked.
        self._server = make_server(
            host, port, _not_ready, threaded=True, request_handler=RequestHandler
        )
        self.issuer = f"http://{host}:{self._server.server_port}"
        config = canaille_configuration(urlsplit(self.issuer).netloc, trusted_hosts)
        # env_file and env_prefix keep Canaille from reading herald's .env or generic
        # variables such as SECRET_KEY from the environment.
        self.app = canaille.create_app(
            config=config, env_file=None, env_prefix="HERALD_DEV_IDP_CANAILLE_"
        )
        _require_pkce_s256()
        self._server.app = self.app
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dev-idp", daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the command line's way)."""
        self._server.serve_forever()

    def add_user(self, login: Login) -> None:
        """The account and its groups (created when missing)."""
        models, backend = _models_and_backend()
        with self.app.app_context():
            given, _, family = login.name.partition(" ")
            user = models.User(
                user_name=login.username,
                password=login.password,
                emails=[login.email],
                formatted_name=login.name,
                given_name=given,
                family_name=family or given,
                display_name=login.username,
            )
            backend.save(user)
            for name in login.groups:
                group = backend.get(models.Group, display_name=name)
                if group is None:
                    group = models.Group(display_name=name, members=[user])
                else:
                    group.members = [*group.members, user]
                backend.save(group)

    def add_client(self, client: ClientRegistration) -> None:
        """A confidential client allowed the authorization code grant, PKCE required."""
        models, backend = _models_and_backend()
        parts = urlsplit(client.redirect_uri)
        with self.app.app_context():
            registered = models.Client(
                client_id=client.client_id,
                client_secret=client.client_secret,
                client_id_issued_at=datetime.datetime.now(datetime.UTC),
                client_name="herald",
                # On a trusted host: no consent page for the operators' own tool.
                client_uri=f"{parts.scheme}://{parts.netloc}",
                redirect_uris=loopback_twins(client.redirect_uri),
                post_logout_redirect_uris=loopback_twins(client.post_logout_redirect_uri),
                grant_types=["authorization_code"],
                response_types=["code"],
                token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method
                scope=list(CLIENT_SCOPES),
            )
            backend.save(registered)
            registered.audience = [registered]
            backend.save(registered)


def loopback_twins(uri: str) -> list[str]:
    """``uri``, and the same on ``localhost`` for ``127.0.0.1`` and back.

    herald derives its redirect URI from the address the browser used, and either name
    of the loopback address is a natural thing to type.
    """
    parts = urlsplit(uri)
    twin = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(parts.hostname or "")
    if twin is None:
        return [uri]
    netloc = twin + (f":{parts.port}" if parts.port else "")
    return [uri, parts._replace(netloc=netloc).geturl()]


def _models_and_backend() -> tuple[Any, Any]:
    """Canaille's model classes and its backend, both set up by ``create_app``."""
    from canaille.app import models  # type: ignore[import-untyped]
    from canaille.backends import Backend  # type: ignore[import-untyped]

    return models, Backend.instance


def _require_pkce_s256() -> None:
    """Refuse authorization requests without an S256 code challenge, from every client.

    Canaille's ``CodeChallenge(required=True)`` requires PKCE of public clients only
    and accepts ``plain``; herald is a confidential client and must prove it sends
    S256. authlib calls a grant's extensions on every request, and the
    authorization code grant's list is the one Canaille registered in ``setup_oauth``.
    """
    from authlib.oauth2.rfc6749 import InvalidRequestError  # type: ignore[import-untyped]
    from canaille.oidc.provider import (  # type: ignore[import-untyped]
        AuthorizationCodeGrant,
        authorization,
    )

    def check(grant: Any, _result: Any) -> None:
        if grant.request.payload.data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE is required: send code_challenge_method=S256")

    def extension(grant: Any) -> None:
        grant.register_hook("after_validate_authorization_request_payload", check)

    for grant_cls, extensions in authorization._authorization_grants:
        if issubclass(grant_cls, AuthorizationCodeGrant) and extension not in extensions:
            extensions.append(extension)


def _not_ready(environ: Any, start_response: Any) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting\n"]


def post_logout_redirect_uri(redirect_uri: str) -> str:
    """Where herald sends an operator after the provider ended the session."""
    return redirect_uri.rsplit("/", 1)[0] + "/logged-out"


def seed(
    provider: DevIdentityProvider,
    redirect_uri: str = DEFAULT_REDIRECT_URI,
    client_secret: str | None = None,
    admin_password: str | None = None,
    user_password: str | None = None,
) -> Seeded:
    """The admin, the user who is not one, the admins group and the herald client.

    Passwords and the client secret are random unless given.
    """
    seeded = Seeded(
        admin=Login(
            username="admin",
            password=admin_password or secrets.token_urlsafe(9),
            email="admin@herald.test",
            name="Ada Admin",
            groups=(ADMIN_GROUP,),
        ),
        user=Login(
            username="user",
            password=user_password or secrets.token_urlsafe(9),
            email="user@herald.test",
            name="Uma User",
            groups=(),
        ),
        client=ClientRegistration(
            client_id=CLIENT_ID,
            client_secret=client_secret or secrets.token_urlsafe(24),
            redirect_uri=redirect_uri,
            post_logout_redirect_uri=post_logout_redirect_uri(redirect_uri),
        ),
    )
    provider.add_user(seeded.admin)
    provider.add_user(seeded.user)
    provider.add_client(seeded.client)
    return seeded


def api_environment(provider: DevIdentityProvider, seeded: Seeded) -> dict[str, str]:
    """The api's HERALD_ADMIN_OIDC_* variables for this provider."""
    return {
        "HERALD_ADMIN_OIDC_ISSUER": provider.issuer,
        "HERALD_ADMIN_OIDC_CLIENT_ID": seeded.client.client_id,
        "HERALD_ADMIN_OIDC_CLIENT_SECRET": seeded.client.client_secret,
        "HERALD_ADMIN_OIDC_ADMIN_CLAIM": "groups",
        "HERALD_ADMIN_OIDC_ADMIN_VALUES": ADMIN_GROUP,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m herald_api.admin.dev_idp",
        description="A local OpenID Connect provider (Canaille) for herald's admin UI.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind and issue as")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to bind")
    parser.add_argument(
        "--redirect-uri",
        default=DEFAULT_REDIRECT_URI,
        help="herald's /admin/callback URL, registered for the client",
    )
    parser.add_argument("--client-secret", help="the client's secret (default: random)")
    parser.add_argument("--admin-password", help="the admin's password (default: random)")
    parser.add_argument("--user-password", help="the non-admin's password (default: random)")
    parser.add_argument("--access-log", action="store_true", help="print each request")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    redirect_uris = loopback_twins(args.redirect_uri)
    redirect_hosts = tuple(urlsplit(uri).hostname or "" for uri in redirect_uris)
    try:
        provider = DevIdentityProvider(
            args.host,
            args.port,
            trusted_hosts=redirect_hosts,
            access_log=args.access_log,
        )
    except RuntimeError as error:
        print(f"dev_idp: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"dev_idp: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 2
    seeded = seed(
        provider,
        redirect_uri=args.redirect_uri,
        client_secret=args.client_secret,
        admin_password=args.admin_password,
        user_password=args.user_password,
    )
    lines = [
        f"OpenID Connect provider (Canaille) at {provider.issuer}",
        f"  admin login:     {seeded.admin.username} / {seeded.admin.password}"
        f"  (group {ADMIN_GROUP})",
        f"  non-admin login: {seeded.user.username} / {seeded.user.password}",
        f"  client:          {seeded.client.client_id} / {seeded.client.client_secret}",
        f"  redirect URIs:   {' '.join(redirect_uris)}",
        "  api environment:",
        *(f"    {name}={value}" for name, value in api_environment(provider, seeded).items()),
        # Not the provider's business, but the api will not start the login without them.
        f"    HERALD_ADMIN_SESSION_SECRET={secrets.token_urlsafe(32)}",
        f"    HERALD_ADMIN_COOKIE_SECURE={str(args.redirect_uri.startswith('https:')).lower()}",
    ]
    print("\n".join(lines), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        provider.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
