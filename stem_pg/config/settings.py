"""StemConfig: the Stem environment variables, read and checked once at start-up."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from stem_pg.core.dsn import validate_url
from stem_pg.core.errors import ConfigError
from stem_pg.core.namespaces import DEFAULT_NAMESPACE, validate_namespace
from stem_pg.core.signing import Signing, parse_keys
from stem_pg.core.storable import DEFAULT_MAX_PAYLOAD_BYTES

DEFAULT_PREFETCH_MULTIPLIER = 2
DEFAULT_MAX_RETRIES = 3

#: Which part of Stem a namespace is resolved for: each has its own variable (Stem's
#: namespaces page), falling back to STEM_NAMESPACE.
Component = Literal["default", "worker", "workflow", "dashboard"]
NAMESPACE_VARIABLES: dict[Component, str] = {
    "default": "STEM_NAMESPACE",
    "worker": "STEM_WORKER_NAMESPACE",
    "workflow": "STEM_WORKFLOW_NAMESPACE",
    "dashboard": "STEM_DASHBOARD_NAMESPACE",
}
STORE_URL_VARIABLES = {
    "result_backend_url": "STEM_RESULT_BACKEND_URL",
    "schedule_store_url": "STEM_SCHEDULE_STORE_URL",
    "lock_store_url": "STEM_LOCK_STORE_URL",
    "revoke_store_url": "STEM_REVOKE_STORE_URL",
    "workflow_store_url": "STEM_WORKFLOW_STORE_URL",
}


@dataclass(frozen=True)
class StemConfig:
    """Everything stem_pg reads from the environment.

    ``broker_url`` is None when no database is configured; the CLI then falls
    back to the embedded server where that makes sense (``stem demo``).
    """

    broker_url: str | None = None
    #: STEM_DIRECT_URL: straight to Postgres, for LISTEN when the broker URL is a pooler.
    direct_url: str | None = None
    result_backend_url: str | None = None
    schedule_store_url: str | None = None
    lock_store_url: str | None = None
    revoke_store_url: str | None = None
    workflow_store_url: str | None = None
    default_queue: str = "default"
    routing_config: str | None = None
    worker_queues: tuple[str, ...] = ()
    worker_broadcasts: tuple[str, ...] = ()
    prefetch_multiplier: int = DEFAULT_PREFETCH_MULTIPLIER
    default_max_retries: int = DEFAULT_MAX_RETRIES
    namespace: str = DEFAULT_NAMESPACE
    worker_namespace: str = DEFAULT_NAMESPACE
    workflow_namespace: str = DEFAULT_NAMESPACE
    dashboard_namespace: str = DEFAULT_NAMESPACE
    #: The longest JSON a job's kwargs or headers may have (STEM_MAX_PAYLOAD_BYTES).
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    #: STEM_SIGNING_KEYS / STEM_SIGNING_ACTIVE_KEY: sign what is enqueued, verify what runs.
    signing: Signing | None = None
    #: The namespace variables that were set: they win over an application's own
    #: ``Stem(namespace=...)`` (see ``namespace_for``).
    namespaces_set: frozenset[str] = frozenset()

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> StemConfig:
        """Read the STEM_* variables; raise ConfigError naming a bad variable and value."""
        env = os.environ if env is None else env
        broker = _url(env, "STEM_BROKER_URL")
        stores = {attr: _url(env, var) or broker for attr, var in STORE_URL_VARIABLES.items()}
        namespace = _namespace(env, "STEM_NAMESPACE", DEFAULT_NAMESPACE)
        check_single_database(broker, {var: _url(env, var) for var in STORE_URL_VARIABLES.values()})
        return cls(
            broker_url=broker,
            direct_url=_url(env, "STEM_DIRECT_URL"),
            **stores,
            default_queue=_name(env, "STEM_DEFAULT_QUEUE", "default"),
            routing_config=env.get("STEM_ROUTING_CONFIG") or None,
            worker_queues=_names(env, "STEM_WORKER_QUEUES"),
            worker_broadcasts=_names(env, "STEM_WORKER_BROADCASTS"),
            prefetch_multiplier=_int(env, "STEM_PREFETCH_MULTIPLIER", DEFAULT_PREFETCH_MULTIPLIER, 1),
            default_max_retries=_int(env, "STEM_DEFAULT_MAX_RETRIES", DEFAULT_MAX_RETRIES, 0),
            namespace=namespace,
            worker_namespace=_namespace(env, "STEM_WORKER_NAMESPACE", namespace),
            workflow_namespace=_namespace(env, "STEM_WORKFLOW_NAMESPACE", namespace),
            dashboard_namespace=_namespace(env, "STEM_DASHBOARD_NAMESPACE", namespace),
            max_payload_bytes=_int(env, "STEM_MAX_PAYLOAD_BYTES", DEFAULT_MAX_PAYLOAD_BYTES, 1024),
            signing=_signing(env),
            namespaces_set=frozenset(v for v in NAMESPACE_VARIABLES.values() if env.get(v)),
        )

    def namespace_for(
        self, component: Component = "default", *, flag: str | None = None, app: str | None = None
    ) -> str:
        """The one namespace rule of every command and application: ``--namespace``
        (``flag``), then the component's variable (STEM_WORKER_NAMESPACE...), then
        STEM_NAMESPACE, then the application's own ``Stem(namespace=...)`` (``app``),
        then ``stem``."""
        if flag:
            return validate_namespace(flag, source="--namespace")
        for variable in dict.fromkeys((NAMESPACE_VARIABLES[component], "STEM_NAMESPACE")):
            if variable in self.namespaces_set:
                return self._namespaces()[variable]
        if app:
            return validate_namespace(app, source="namespace")
        return self._namespaces()[NAMESPACE_VARIABLES[component]]

    def _namespaces(self) -> dict[str, str]:
        return {
            "STEM_NAMESPACE": self.namespace,
            "STEM_WORKER_NAMESPACE": self.worker_namespace,
            "STEM_WORKFLOW_NAMESPACE": self.workflow_namespace,
            "STEM_DASHBOARD_NAMESPACE": self.dashboard_namespace,
        }

    def url_for(self, *, flag: str | None = None, app: str | Callable[[], str] | None = None) -> str:
        """The one database rule: ``--url`` (``flag``), then STEM_BROKER_URL, then the
        application's own ``Stem(url)`` (``app``, or a callable giving it), else a
        ConfigError telling the user how to set one (as Celery: ``--broker``, then
        CELERY_BROKER_URL, then the app's configuration)."""
        if flag:
            return validate_url(flag, source="--url")
        if self.broker_url is not None:
            return self.broker_url
        if app is not None:
            return app if isinstance(app, str) else app()
        return self.require_broker_url()

    def require_broker_url(self) -> str:
        """The broker URL, or a ConfigError telling the user how to set one."""
        if self.broker_url is None:
            raise ConfigError(
                "STEM_BROKER_URL is not set: point it at your database,"
                " e.g. postgresql://user@localhost:5432/app"
            )
        return self.broker_url


def check_single_database(broker: str | None, stores: Mapping[str, str | None]) -> None:
    """Every store lives in the broker's database (beat fires a schedule and enqueues its
    job in one statement; results, revokes and workflows are read beside the jobs): a
    store variable naming another database is refused, not silently ignored."""
    for variable, url in stores.items():
        if url is not None and url != broker:
            other = (
                "is set but STEM_BROKER_URL is not"
                if broker is None
                else "names another database than STEM_BROKER_URL"
            )
            raise ConfigError(
                f"{variable} {other}: stem_pg keeps every"
                " store (results, schedules, locks, revokes, workflows) in the broker's"
                " database: unset it"
            )


def _url(env: Mapping[str, str], variable: str) -> str | None:
    value = env.get(variable)
    if value is None or value == "":
        return None
    return validate_url(value, source=variable)


def _namespace(env: Mapping[str, str], variable: str, default: str) -> str:
    value = env.get(variable)
    if value is None or value == "":
        return default
    return validate_namespace(value, source=variable)


def _name(env: Mapping[str, str], variable: str, default: str) -> str:
    value = env.get(variable, "").strip()
    if not value:
        return default
    if any(c.isspace() or c == "," for c in value):
        raise ConfigError(f"{variable}: {value!r} is not a single queue name")
    return value


def _names(env: Mapping[str, str], variable: str) -> tuple[str, ...]:
    raw = env.get(variable, "")
    names = tuple(part.strip() for part in raw.split(","))
    if raw.strip() and not all(names):
        raise ConfigError(f"{variable}: {raw!r} has an empty entry; use a comma-separated list")
    return tuple(n for n in names if n)


def _int(env: Mapping[str, str], variable: str, default: int, minimum: int) -> int:
    raw = env.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{variable}: {raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{variable}: {raw!r} must be at least {minimum}")
    return value


def _signing(env: Mapping[str, str]) -> Signing | None:
    """The signing keys, or None when STEM_SIGNING_KEYS is unset; errors name the variable
    and the key id, never a secret."""
    keys = env.get("STEM_SIGNING_KEYS", "").strip()
    active = env.get("STEM_SIGNING_ACTIVE_KEY", "").strip() or None
    if not keys:
        if active is not None:
            raise ConfigError("STEM_SIGNING_ACTIVE_KEY is set but STEM_SIGNING_KEYS is not")
        return None
    parsed = parse_keys(keys, source="STEM_SIGNING_KEYS")
    if active is None:
        signers = [key_id for key_id, key in parsed.items() if key.sign is not None]
        active = signers[0] if len(signers) == 1 else None
    elif active not in parsed:
        raise ConfigError(
            f"STEM_SIGNING_ACTIVE_KEY: {active!r} is not a key id of STEM_SIGNING_KEYS"
            f" ({', '.join(sorted(parsed))})"
        )
    elif parsed[active].sign is None:
        raise ConfigError(f"STEM_SIGNING_ACTIVE_KEY: {active!r} is a public key: it cannot sign")
    return Signing(parsed, active)
