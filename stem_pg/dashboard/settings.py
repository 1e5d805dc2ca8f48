"""Who may use the dashboard and how: credentials from the environment, the bind rule.

Secrets are kept only as SHA-256 digests and compared digest to digest with
``hmac.compare_digest``, so neither a timing nor a page can give them away.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from stem_pg.core.errors import ConfigError

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True)
class Principal:
    """Who made a request: a name for the action log, and whether they may act."""

    name: str
    can_act: bool


@dataclass(frozen=True)
class DashboardAuth:
    """The accepted credentials. ``token``: a bearer token (also accepted as the password of
    HTTP basic, whatever the user name); ``users``: basic-auth user -> password digest;
    ``trusted_header``: a header a reverse proxy sets to the signed-in user's name;
    ``read_only_users``: names that may look but not act."""

    token: bytes | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)
    trusted_header: str | None = None
    read_only_users: frozenset[str] = frozenset()

    @property
    def configured(self) -> bool:
        return self.token is not None or bool(self.users) or self.trusted_header is not None

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> DashboardAuth:
        """STEM_DASHBOARD_TOKEN, STEM_DASHBOARD_USERS (``user:password`` lines),
        STEM_DASHBOARD_TRUSTED_HEADER and STEM_DASHBOARD_READ_ONLY_USERS (comma-separated).

        Raises ConfigError naming the variable when a value is malformed (never the secret).
        """
        token = env.get("STEM_DASHBOARD_TOKEN") or None
        users: dict[str, bytes] = {}
        for number, line in enumerate((env.get("STEM_DASHBOARD_USERS") or "").splitlines(), 1):
            if not line.strip():
                continue
            name, sep, password = line.strip().partition(":")
            if not sep or not name or not password:
                raise ConfigError(
                    f"STEM_DASHBOARD_USERS: line {number} must be 'user:password' (the password is not shown)"
                )
            users[name] = digest(password)
        header = (env.get("STEM_DASHBOARD_TRUSTED_HEADER") or "").strip() or None
        if header is not None and not header.replace("-", "").isalnum():
            raise ConfigError(f"STEM_DASHBOARD_TRUSTED_HEADER: {header!r} is not a header name")
        read_only = env.get("STEM_DASHBOARD_READ_ONLY_USERS") or ""
        return cls(
            token=digest(token) if token else None,
            users=users,
            trusted_header=header,
            read_only_users=frozenset(n.strip() for n in read_only.split(",") if n.strip()),
        )

    def check_basic(self, user: str, password: str) -> bool:
        given = digest(password)
        if self.token is not None and hmac.compare_digest(given, self.token):
            return True
        expected = self.users.get(user)
        # Compare against something even for an unknown user: the answer takes as long.
        return hmac.compare_digest(given, expected or digest("\0")) and expected is not None

    def check_token(self, token: str) -> bool:
        return self.token is not None and hmac.compare_digest(digest(token), self.token)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, auth: DashboardAuth) -> None:
    """Refuse to listen beyond this machine without authentication.

    Raises ConfigError naming the host and the variables that would allow it.
    """
    if not is_loopback(host) and not auth.configured:
        raise ConfigError(
            f"--host {host}: refusing to serve the dashboard beyond this machine without"
            " authentication; set STEM_DASHBOARD_TOKEN, STEM_DASHBOARD_USERS or"
            " STEM_DASHBOARD_TRUSTED_HEADER (or bind 127.0.0.1)"
        )
