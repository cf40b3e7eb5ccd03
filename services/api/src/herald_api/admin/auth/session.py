"""The admin session: a signed cookie on ``/admin`` only, and the middleware that reads it.

Why not Starlette's ``SessionMiddleware``: it wraps the whole app, so it would decode a
session cookie on every ``/api/v1`` request too, and it re-signs the cookie on every
response, which makes its expiry sliding: a dashboard polling every 2 s would keep a
session alive for ever. This layer runs only for paths under ``/admin`` (elsewhere
there is no ``scope["session"]``, and ``request.session`` raises), writes the cookie
only when the session changed, and enforces an absolute expiry signed into the
content.

What the cookie holds once logged in: the operator's subject, name and email, the
CSRF token and the expiry. No token from the provider. While a login is under way it
also holds authlib's state for it (state, nonce, PKCE verifier, the URL to return
to), which the callback consumes.
"""

import hashlib
import json
import time
from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.datastructures import MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE_NAME = "herald_admin"
ADMIN_PATH = "/admin"
EXPIRES_KEY = "exp"
_SALT = "herald.admin.session"


class SessionCodec:
    """Signs session contents into a cookie value and back (HMAC-SHA256).

    ``decode`` answers an empty session for a missing, tampered or malformed cookie,
    for one signed longer ago than ``max_age``, and for one whose content says it
    expired: the server decides, whatever the browser keeps.
    """

    def __init__(self, secret: str, max_age: int) -> None:
        self._serializer = URLSafeTimedSerializer(
            secret, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256}
        )
        self.max_age = max_age

    def encode(self, session: Mapping[str, Any]) -> str:
        return self._serializer.dumps(dict(session))

    def decode(self, value: str | None, now: float | None = None) -> dict[str, Any]:
        if not value:
            return {}
        try:
            session = self._serializer.loads(value, max_age=self.max_age)
        except BadData:
            return {}
        if not isinstance(session, dict):
            return {}
        expires = session.get(EXPIRES_KEY)
        if expires is not None and (
            not isinstance(expires, int | float) or expires <= (now or time.time())
        ):
            return {}
        return session


def is_admin_path(path: str, prefix: str = ADMIN_PATH) -> bool:
    """``/admin`` and what is under it; not ``/administrator``."""
    return path == prefix or path.startswith(prefix + "/")


def root_path(scope: Scope) -> str:
    """The prefix a proxy mounts herald under (uvicorn's ``--root-path``), or ``""``."""
    return str(scope.get("root_path", "")).rstrip("/")


def route_path(scope: Scope, path: str | None = None) -> str:
    """A request path as the app routes it: without the root path in front."""
    path = scope["path"] if path is None else path
    root = root_path(scope)
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :] or "/"
    return path


class AdminSessionMiddleware:
    """``scope["session"]`` for requests under ``/admin``, saved back when it changed.

    authlib's Starlette client keeps its login state in ``request.session``, which is
    this dict. An unreadable cookie is deleted, so the browser stops sending it.
    """

    def __init__(
        self,
        app: ASGIApp,
        codec: SessionCodec,
        secure: bool,
        cookie_path: str | None = None,
    ) -> None:
        self.app = app
        self.codec = codec
        self.secure = secure
        self.cookie_path = cookie_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_admin_path(route_path(scope)):
            await self.app(scope, receive, send)
            return
        raw = _request_cookie(scope, COOKIE_NAME)
        session = self.codec.decode(raw)
        unreadable = raw is not None and not session
        loaded = _fingerprint(session)
        scope["session"] = session

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                current: dict[str, Any] = scope["session"]
                if unreadable or _fingerprint(current) != loaded:
                    headers = MutableHeaders(scope=message)
                    path = self.cookie_path or root_path(scope) + ADMIN_PATH
                    headers.append("Set-Cookie", self.set_cookie_header(current, path))
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def set_cookie_header(self, session: Mapping[str, Any], path: str = ADMIN_PATH) -> str:
        """The Set-Cookie value that stores this session, or deletes the cookie if empty."""
        cookie: SimpleCookie = SimpleCookie()
        cookie[COOKIE_NAME] = self.codec.encode(session) if session else ""
        morsel = cookie[COOKIE_NAME]
        morsel["path"] = path
        morsel["httponly"] = True
        morsel["samesite"] = "Lax"
        if self.secure:
            morsel["secure"] = True
        if session:
            morsel["max-age"] = self.codec.max_age
        else:
            morsel["max-age"] = 0
            morsel["expires"] = "Thu, 01 Jan 1970 00:00:00 GMT"
        return morsel.OutputString()


def _request_cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope["headers"]:
        if key == b"cookie":
            found = cookie_parser(value.decode("latin-1")).get(name)
            if found:
                return found
    return None


def _fingerprint(session: Mapping[str, Any]) -> str:
    # A deep image: a shallow copy would share the nested dicts the request may change.
    return json.dumps(session, sort_keys=True, default=str)
