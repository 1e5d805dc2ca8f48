"""The guard in front of every request: authentication, the CSRF cookie, security headers.

A pure ASGI middleware (so the live event stream passes through unbuffered). Actions
check the CSRF token themselves (``check_csrf``): the guard never reads a request body.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stem_pg.dashboard.settings import DashboardAuth, Principal

CSRF_COOKIE = "stem_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        b" connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class Guard:
    """Authenticates (401 without valid credentials when auth is configured), hands the
    principal and the CSRF token to the app in ``request.state``, and adds the headers."""

    def __init__(self, app: ASGIApp, *, auth: DashboardAuth, read_only: bool) -> None:
        self.app = app
        self.auth = auth
        self.read_only = read_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        principal = self.authenticate(request)
        if principal is None:
            await _unauthorized(send)
            return
        cookie = request.cookies.get(CSRF_COOKIE, "")
        token = cookie if len(cookie) == 43 else secrets.token_urlsafe(32)
        state = scope.setdefault("state", {})
        state["principal"] = principal
        state["csrf"] = token
        path = (scope.get("root_path") or "") + "/"
        set_cookie = None
        if token != cookie:
            set_cookie = f"{CSRF_COOKIE}={token}; Path={path}; HttpOnly; SameSite=Strict".encode()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(SECURITY_HEADERS)
                if set_cookie is not None:
                    headers.append((b"set-cookie", set_cookie))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def authenticate(self, request: Request) -> Principal | None:
        """The principal of ``request``; None when auth is configured and nothing valid came."""
        auth = self.auth
        if not auth.configured:
            return Principal("local", can_act=not self.read_only)
        name = self._credentials(request)
        if name is None:
            return None
        return Principal(name, can_act=not self.read_only and name not in auth.read_only_users)

    def _credentials(self, request: Request) -> str | None:
        auth = self.auth
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and auth.check_token(value.strip()):
            return "token"
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return (user or "token") if auth.check_basic(user, password) else None
        if auth.trusted_header is not None:
            proxied = request.headers.get(auth.trusted_header, "").strip()
            return proxied or None
        return None


def check_csrf(request: Request, form: Any) -> bool:
    """Whether an action carries the token of its own session (form field or header)."""
    expected = request.cookies.get(CSRF_COOKIE, "")
    given = str(form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or "")
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


async def _unauthorized(send: Send) -> None:
    body = b"401 Unauthorized: sign in to the stem dashboard\n"
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b'Basic realm="stem dashboard", charset="UTF-8"'),
        *SECURITY_HEADERS,
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})
