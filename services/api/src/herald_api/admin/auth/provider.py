"""The OpenID provider, through authlib's Starlette client, behind a typed surface.

authlib ships no type information, so its objects stay inside this module; the rest
of the package sees ``Provider`` and plain dicts. The client is registered from the
issuer's discovery document (fetched on the first login, not at startup, so that the
api starts while the provider is down) and always sends a PKCE S256 challenge.
"""

import warnings
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError  # type: ignore[import-untyped]
from authlib.integrations.base_client import (  # type: ignore[import-untyped]
    MismatchingStateError,
)
from joserfc.errors import JoseError
from starlette.requests import Request
from starlette.responses import Response

from herald_api.admin.auth.rule import AdminRule
from herald_api.admin_settings import AdminSettings

with warnings.catch_warnings():
    # authlib 1.9 asks for the httpx2 fork; herald depends on httpx, which it still drives.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.starlette_client import OAuth  # type: ignore[import-untyped]

CLIENT_NAME = "herald"
DISCOVERY_PATH = "/.well-known/openid-configuration"
HTTP_TIMEOUT_SECONDS = 10.0


class LoginFailed(Exception):
    """The login could not be completed; ``message`` says why, for the operator."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


@dataclass(frozen=True)
class Discovery:
    """What herald uses of the provider's discovery document."""

    issuer: str
    end_session_endpoint: str | None
    userinfo_endpoint: str | None


class Provider:
    """herald's client at the OpenID provider named by ``HERALD_ADMIN_OIDC_ISSUER``."""

    def __init__(self, settings: AdminSettings) -> None:
        assert settings.admin_oidc_issuer is not None
        assert settings.admin_oidc_client_secret is not None
        self.issuer = settings.admin_oidc_issuer.rstrip("/")
        self.client_id = settings.admin_oidc_client_id
        oauth = OAuth()
        self._client: Any = oauth.register(
            name=CLIENT_NAME,
            server_metadata_url=self.issuer + DISCOVERY_PATH,
            client_id=settings.admin_oidc_client_id,
            client_secret=settings.admin_oidc_client_secret.get_secret_value(),
            client_kwargs={
                "scope": settings.admin_oidc_scopes,
                "code_challenge_method": "S256",
                "timeout": HTTP_TIMEOUT_SECONDS,
            },
        )

    async def discover(self) -> Discovery:
        """The discovery document (cached by authlib once loaded).

        Its issuer must be the configured one (OpenID Connect Discovery 1.0, 4.3):
        otherwise a document on one host could vouch for tokens of another.
        """
        try:
            metadata: dict[str, Any] = await self._client.load_server_metadata()
        except (httpx.HTTPError, ValueError) as error:
            # A failed load is not cached: the next login tries again.
            raise LoginFailed(
                f"the identity provider at {self.issuer} did not answer its discovery "
                f"document ({type(error).__name__})",
                status_code=502,
            ) from error
        issuer = str(metadata.get("issuer", "")).rstrip("/")
        if issuer != self.issuer:
            raise LoginFailed(
                f"the discovery document names the issuer {issuer!r}, "
                f"not the configured {self.issuer!r}",
                status_code=502,
            )
        return Discovery(
            issuer=issuer,
            end_session_endpoint=metadata.get("end_session_endpoint"),
            userinfo_endpoint=metadata.get("userinfo_endpoint"),
        )

    async def authorize_redirect(self, request: Request, redirect_uri: str) -> Response:
        """The redirect to the provider's login; the state, nonce and PKCE verifier go
        into ``request.session`` for the callback."""
        await self.discover()
        try:
            response: Response = await self._client.authorize_redirect(request, redirect_uri)
        except (AuthlibBaseError, httpx.HTTPError) as error:
            raise LoginFailed(f"the login could not start: {error}", status_code=502) from error
        return response

    async def claims(self, request: Request, rule: AdminRule) -> dict[str, Any]:
        """The verified claims of the user the provider sent back to the callback.

        The code is exchanged with the PKCE verifier; the ID token's signature, issuer,
        audience, expiry and nonce are checked by authlib. When the ID token's claims do
        not make an admin, the userinfo endpoint's are added (providers such as Keycloak
        may keep groups there), the ID token's winning. The tokens are dropped here.
        """
        discovery = await self.discover()
        refusal = request.query_params.get("error")
        if refusal:
            description = request.query_params.get("error_description") or refusal
            raise LoginFailed(f"the identity provider refused the login: {description}")
        # RFC 9207: a response naming another issuer is a mix-up, not a login.
        returned_issuer = request.query_params.get("iss")
        if returned_issuer is not None and returned_issuer.rstrip("/") != discovery.issuer:
            raise LoginFailed(f"the login response came from another issuer ({returned_issuer})")
        try:
            token: dict[str, Any] = await self._client.authorize_access_token(request)
            claims: dict[str, Any] = dict(token.get("userinfo") or {})
            if not claims.get("sub"):
                raise LoginFailed("the identity provider sent no ID token")
            if discovery.userinfo_endpoint and not rule.admits(claims):
                userinfo: dict[str, Any] = dict(await self._client.userinfo(token=token))
                # OpenID Connect Core 5.3.2: userinfo about someone else is discarded.
                if userinfo.get("sub") == claims["sub"]:
                    claims = userinfo | claims
        except LoginFailed:
            raise
        except MismatchingStateError as error:
            raise LoginFailed(
                "this browser did not start this login, or lost its cookie on the way (over "
                "plain http the api needs HERALD_ADMIN_COOKIE_SECURE=false): log in again"
            ) from error
        except (AuthlibBaseError, JoseError) as error:
            raise LoginFailed(f"the login could not be verified: {_describe(error)}") from error
        except httpx.HTTPError as error:
            raise LoginFailed(
                f"the identity provider did not answer ({type(error).__name__})", status_code=502
            ) from error
        return claims

    async def end_session_url(self, post_logout_redirect_uri: str) -> str | None:
        """The provider's RP-initiated logout URL, or None when it has none.

        It carries client_id and post_logout_redirect_uri, not id_token_hint: the
        session keeps no token (RP-Initiated Logout 1.0 allows this; the provider then
        asks the user to confirm, which is the point of logging out).
        """
        try:
            discovery = await self.discover()
        except LoginFailed:
            return None
        if not discovery.end_session_endpoint:
            return None
        result: dict[str, Any] = await self._client.create_logout_url(
            post_logout_redirect_uri=post_logout_redirect_uri, client_id=self.client_id
        )
        url: str = result["url"]
        return url


def _describe(error: Exception) -> str:
    description = getattr(error, "description", None) or str(error)
    name = getattr(error, "error", None) or type(error).__name__
    return f"{name}: {description}" if description and description != name else str(name)
