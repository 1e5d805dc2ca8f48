"""StemConfig.from_environment: every STEM_* variable, its defaults and fallbacks, and clean errors."""

from __future__ import annotations

import dataclasses

import pytest

from stem_pg.config.settings import DEFAULT_MAX_RETRIES, DEFAULT_PREFETCH_MULTIPLIER, StemConfig
from stem_pg.core.dsn import redact, validate_url
from stem_pg.core.errors import ConfigError, NamespaceError

BROKER = "postgresql://stem@db:5432/app"
STORE_VARIABLES = {
    "result_backend_url": "STEM_RESULT_BACKEND_URL",
    "schedule_store_url": "STEM_SCHEDULE_STORE_URL",
    "lock_store_url": "STEM_LOCK_STORE_URL",
    "revoke_store_url": "STEM_REVOKE_STORE_URL",
    "workflow_store_url": "STEM_WORKFLOW_STORE_URL",
}
NAMESPACE_VARIABLES = {
    "worker_namespace": "STEM_WORKER_NAMESPACE",
    "workflow_namespace": "STEM_WORKFLOW_NAMESPACE",
    "dashboard_namespace": "STEM_DASHBOARD_NAMESPACE",
}


def test_empty_environment_gives_defaults() -> None:
    config = StemConfig.from_environment({})
    assert config == StemConfig()
    assert config.broker_url is None
    assert all(getattr(config, attr) is None for attr in STORE_VARIABLES)
    assert config.default_queue == "default"
    assert config.routing_config is None
    assert config.worker_queues == config.worker_broadcasts == ()
    assert config.prefetch_multiplier == DEFAULT_PREFETCH_MULTIPLIER
    assert config.default_max_retries == DEFAULT_MAX_RETRIES
    assert {config.namespace, *(getattr(config, a) for a in NAMESPACE_VARIABLES)} == {"stem"}


def test_every_variable_is_read() -> None:
    env = {
        "STEM_BROKER_URL": BROKER,
        **dict.fromkeys(STORE_VARIABLES.values(), BROKER),  # another database is refused (below)
        "STEM_DEFAULT_QUEUE": "primary",
        "STEM_ROUTING_CONFIG": "config/routing.yaml",
        "STEM_WORKER_QUEUES": "primary, reports ,emails",
        "STEM_WORKER_BROADCASTS": "control,updates",
        "STEM_PREFETCH_MULTIPLIER": "4",
        "STEM_DEFAULT_MAX_RETRIES": "0",
        "STEM_NAMESPACE": "prod-us-east",
        "STEM_WORKER_NAMESPACE": "workers",
        "STEM_WORKFLOW_NAMESPACE": "flows",
        "STEM_DASHBOARD_NAMESPACE": "dash",
    }
    config = StemConfig.from_environment(env)
    assert config.broker_url == BROKER
    assert all(getattr(config, attr) == BROKER for attr in STORE_VARIABLES)
    assert config.default_queue == "primary"
    assert config.routing_config == "config/routing.yaml"
    assert config.worker_queues == ("primary", "reports", "emails")
    assert config.worker_broadcasts == ("control", "updates")
    assert config.prefetch_multiplier == 4
    assert config.default_max_retries == 0
    assert config.namespace == "prod-us-east"
    assert (config.worker_namespace, config.workflow_namespace, config.dashboard_namespace) == (
        "workers",
        "flows",
        "dash",
    )


def test_from_environment_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEM_BROKER_URL", BROKER)
    monkeypatch.setenv("STEM_NAMESPACE", "from-os")
    config = StemConfig.from_environment()
    assert (config.broker_url, config.namespace) == (BROKER, "from-os")


def test_store_urls_default_to_the_broker() -> None:
    config = StemConfig.from_environment({"STEM_BROKER_URL": BROKER})
    assert all(getattr(config, attr) == BROKER for attr in STORE_VARIABLES)


@pytest.mark.parametrize("variable", STORE_VARIABLES.values())
def test_a_store_url_naming_another_database_is_refused(variable: str) -> None:
    """Every store lives in the broker's database: a separate one would be silently ignored."""
    other = "postgresql://other:St0rePw@results:5433/store"
    with pytest.raises(ConfigError) as caught:
        StemConfig.from_environment({"STEM_BROKER_URL": BROKER, variable: other})
    assert str(caught.value).startswith(f"{variable} names another database than STEM_BROKER_URL")
    assert "St0rePw" not in str(caught.value)
    with pytest.raises(ConfigError, match=f"{variable} is set but STEM_BROKER_URL is not"):
        StemConfig.from_environment({variable: other})


@pytest.mark.parametrize(("attr", "variable"), STORE_VARIABLES.items())
def test_a_store_url_equal_to_the_broker_is_accepted(attr: str, variable: str) -> None:
    config = StemConfig.from_environment({"STEM_BROKER_URL": BROKER, variable: "postgres://stem@db:5432/app"})
    assert getattr(config, attr) == BROKER


# -- the one namespace rule and the one URL rule -------------------------------------------


def test_the_namespace_rule_flag_then_component_variable_then_stem_namespace_then_app() -> None:
    bare = StemConfig.from_environment({})
    assert bare.namespace_for("worker") == "stem"
    assert bare.namespace_for("worker", app="mine") == "mine"
    assert bare.namespace_for("worker", app="mine", flag="cli") == "cli"
    shared = StemConfig.from_environment({"STEM_NAMESPACE": "env"})
    assert shared.namespace_for("worker", app="mine") == "env"
    assert shared.namespace_for("default", app="mine") == "env"
    workers = StemConfig.from_environment({"STEM_NAMESPACE": "env", "STEM_WORKER_NAMESPACE": "wrk"})
    assert workers.namespace_for("worker", app="mine") == "wrk"
    assert workers.namespace_for("workflow", app="mine") == "env"
    assert workers.namespace_for("worker", app="mine", flag="cli") == "cli"
    only_workers = StemConfig.from_environment({"STEM_WORKER_NAMESPACE": "wrk"})
    assert only_workers.namespace_for("worker", app="mine") == "wrk"
    assert only_workers.namespace_for("default", app="mine") == "mine"
    # A config built in code (no variables) keeps its own namespace below the app's.
    assert StemConfig(namespace="coded").namespace_for() == "coded"
    with pytest.raises(NamespaceError, match="--namespace"):
        bare.namespace_for(flag="Bad")


def test_the_url_rule_flag_then_stem_broker_url_then_app() -> None:
    app = "postgresql://app@apphost/app"
    bare = StemConfig.from_environment({})
    assert bare.url_for(app=app) == app
    assert bare.url_for(app=lambda: app) == app
    assert bare.url_for(app=app, flag="postgres://cli@h/db") == "postgresql://cli@h/db"
    assert StemConfig.from_environment({"STEM_BROKER_URL": BROKER}).url_for(app=app) == BROKER
    with pytest.raises(ConfigError, match="STEM_BROKER_URL is not set"):
        bare.url_for()
    with pytest.raises(ConfigError, match="--url"):
        bare.url_for(flag="mysql://u@h/db")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/db", "postgresql://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql://u@h/db"),
        ("  postgresql://u@h/db  ", "postgresql://u@h/db"),
        ("postgresql:///db?host=/run/postgresql", "postgresql:///db?host=/run/postgresql"),
    ],
)
def test_urls_are_normalised_for_libpq(given: str, expected: str) -> None:
    assert StemConfig.from_environment({"STEM_BROKER_URL": given}).broker_url == expected


def test_empty_values_count_as_unset() -> None:
    env = dict.fromkeys(
        [
            "STEM_BROKER_URL",
            *STORE_VARIABLES.values(),
            "STEM_DEFAULT_QUEUE",
            "STEM_ROUTING_CONFIG",
            "STEM_WORKER_QUEUES",
            "STEM_WORKER_BROADCASTS",
            "STEM_PREFETCH_MULTIPLIER",
            "STEM_DEFAULT_MAX_RETRIES",
            "STEM_NAMESPACE",
            *NAMESPACE_VARIABLES.values(),
        ],
        "",
    )
    assert StemConfig.from_environment(env) == StemConfig()


def test_namespaces_fall_back_to_stem_namespace() -> None:
    config = StemConfig.from_environment({"STEM_NAMESPACE": "staging"})
    assert {getattr(config, attr) for attr in NAMESPACE_VARIABLES} == {"staging"}


@pytest.mark.parametrize(("attr", "variable"), NAMESPACE_VARIABLES.items())
def test_each_namespace_variable_overrides_only_its_own(attr: str, variable: str) -> None:
    config = StemConfig.from_environment({"STEM_NAMESPACE": "staging", variable: "special"})
    assert getattr(config, attr) == "special"
    assert config.namespace == "staging"
    assert all(getattr(config, a) == "staging" for a in NAMESPACE_VARIABLES if a != attr)


@pytest.mark.parametrize(("attr", "variable"), NAMESPACE_VARIABLES.items())
def test_namespace_variable_without_stem_namespace(attr: str, variable: str) -> None:
    config = StemConfig.from_environment({variable: "special"})
    assert getattr(config, attr) == "special"
    assert config.namespace == "stem"


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("STEM_BROKER_URL", "mysql://u@h/db", "not a PostgreSQL URL"),
        ("STEM_BROKER_URL", "host=db dbname=app", "not a PostgreSQL URL"),
        ("STEM_BROKER_URL", "postgresql://u@h:port/db", "not a valid URL"),
        ("STEM_RESULT_BACKEND_URL", "redis://h:6379/1", "not a PostgreSQL URL"),
        ("STEM_WORKFLOW_STORE_URL", "sqlite:///stem.db", "not a PostgreSQL URL"),
        ("STEM_PREFETCH_MULTIPLIER", "0", "at least 1"),
        ("STEM_PREFETCH_MULTIPLIER", "-1", "at least 1"),
        ("STEM_PREFETCH_MULTIPLIER", "two", "not a whole number"),
        ("STEM_PREFETCH_MULTIPLIER", "1.5", "not a whole number"),
        ("STEM_DEFAULT_MAX_RETRIES", "-1", "at least 0"),
        ("STEM_DEFAULT_MAX_RETRIES", "lots", "not a whole number"),
        ("STEM_DEFAULT_QUEUE", "a b", "not a single queue name"),
        ("STEM_DEFAULT_QUEUE", "a,b", "not a single queue name"),
        ("STEM_WORKER_QUEUES", "a,,b", "empty entry"),
        ("STEM_WORKER_BROADCASTS", "control,", "empty entry"),
        ("STEM_NAMESPACE", "Prod", "not allowed"),
        ("STEM_NAMESPACE", 'a"; drop schema stem; --', "not allowed"),
        ("STEM_WORKER_NAMESPACE", "pg_workers", "reserved"),
        ("STEM_WORKFLOW_NAMESPACE", "x" * 100, "bytes long"),
        ("STEM_DASHBOARD_NAMESPACE", "dash board", "not allowed"),
    ],
)
def test_bad_values_name_the_variable_and_the_value(variable: str, value: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint) as caught:
        StemConfig.from_environment({variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable}: ")
    assert repr(value) in message or repr(value.strip()) in message


def test_bad_namespace_raises_namespace_error() -> None:
    with pytest.raises(NamespaceError):
        StemConfig.from_environment({"STEM_WORKER_NAMESPACE": "Workers"})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STEM_BROKER_URL", "mysql://u:s3cret-pw@h/db"),
        ("STEM_BROKER_URL", "postgresql://u:s3cret-pw@h:notaport/db"),
        ("STEM_BROKER_URL", "host=db password=s3cret-pw dbname=app"),
        ("STEM_REVOKE_STORE_URL", "redis://:s3cret-pw@h:6379/0"),
        # Unencoded special characters make the URL invalid, which is exactly
        # when it ends up in an error message.
        ("STEM_BROKER_URL", "postgresql://u:s3cret/pw@h/db"),
        ("STEM_BROKER_URL", "postgresql://u:s3cret?pw@h/db"),
        ("STEM_LOCK_STORE_URL", "mysql://u:s3cret#pw@h/db"),
    ],
)
def test_errors_never_show_passwords(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        StemConfig.from_environment({"STEM_BROKER_URL": BROKER, variable: value})
    assert variable in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_require_broker_url() -> None:
    assert StemConfig(broker_url=BROKER).require_broker_url() == BROKER
    with pytest.raises(ConfigError, match="STEM_BROKER_URL is not set"):
        StemConfig().require_broker_url()


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        StemConfig().namespace = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:secret@h/db", "postgresql://u:***@h/db"),
        ("postgres://u:secret@h:5432/db?sslmode=require", "postgres://u:***@h:5432/db?sslmode=require"),
        ("postgresql+psycopg://u:p%40ss:w@h/db", "postgresql+psycopg://u:***@h/db"),
        ("postgresql://:secret@h/db", "postgresql://:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://h:5432/db", "postgresql://h:5432/db"),
        ("host=h password=secret user=u", "host=h password=*** user=u"),
        ("host=h PASSWORD = secret", "host=h PASSWORD = ***"),
        ("host=h password='sec ret' user=u", "host=h password=*** user=u"),
        (
            "failed for postgresql://a:one@h/db and postgresql://b:two@k/db",
            "failed for postgresql://a:***@h/db and postgresql://b:***@k/db",
        ),
        ("postgresql://u:pa/ss@h/db", "postgresql://u:***@h/db"),
        ("no secrets here", "no secrets here"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_validate_url_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^--url: "):
        validate_url("mysql://h/db", source="--url")
    with pytest.raises(ConfigError, match="expected a postgresql:// URL"):
        validate_url(None, source="--url")
    with pytest.raises(ConfigError, match="expected a postgresql:// URL"):
        validate_url("   ", source="--url")


def test_the_direct_url_is_read_and_checked() -> None:
    pooled = "postgresql://stem@pgbouncer:6432/app?stem_pooler=transaction"
    config = StemConfig.from_environment({"STEM_BROKER_URL": pooled, "STEM_DIRECT_URL": BROKER})
    assert (config.broker_url, config.direct_url) == (pooled, BROKER)
    assert StemConfig.from_environment({"STEM_BROKER_URL": BROKER}).direct_url is None
    with pytest.raises(ConfigError, match=r"^STEM_DIRECT_URL: .*not a PostgreSQL URL"):
        StemConfig.from_environment({"STEM_DIRECT_URL": "mysql://db/app"})
