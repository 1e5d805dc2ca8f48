"""Namespace names: what is accepted, what is refused and why, and the channel names derived."""

from __future__ import annotations

import inspect

import pytest

from stem_pg.core.errors import ConfigError, NamespaceError
from stem_pg.core.namespaces import (
    DEFAULT_NAMESPACE,
    IDENTIFIER_LIMIT,
    MAX_NAMESPACE_LENGTH,
    Channels,
    validate_namespace,
)

LONGEST = "n" * MAX_NAMESPACE_LENGTH
NAMEDATALEN = 64  # Postgres' compiled-in limit: names keep at most 63 bytes


@pytest.mark.parametrize(
    "name", [DEFAULT_NAMESPACE, "prod-us-east", "staging", "a", "tenant_42", "x-1_y", LONGEST]
)
def test_valid_names_are_returned_unchanged(name: str) -> None:
    assert validate_namespace(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "must not be empty"),
        ("n" * (MAX_NAMESPACE_LENGTH + 1), f"the limit is {MAX_NAMESPACE_LENGTH}"),
        ("Prod", "not allowed"),
        ("prod-US-east", "not allowed"),
        ('a"; drop schema stem; --', "not allowed"),
        ('pro"d', "not allowed"),
        ("pro'd", "not allowed"),
        ("pg_catalog", "reserved"),
        ("pg_stem", "reserved"),
        ("1prod", "not allowed"),
        ("-prod", "not allowed"),
        ("_prod", "not allowed"),
        ("prod us", "not allowed"),
        ("prod.us", "not allowed"),
        ("prod\n", "not allowed"),
        ("pröd", "not allowed"),
        ("prod$", "not allowed"),
    ],
)
def test_invalid_names_are_refused_with_the_value(name: str, reason: str) -> None:
    with pytest.raises(NamespaceError, match=reason) as caught:
        validate_namespace(name)
    if name:
        assert repr(name) in str(caught.value)


@pytest.mark.parametrize("value", [None, 42, b"prod", ["prod"]])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(NamespaceError, match="must be a string"):
        validate_namespace(value)


def test_error_names_the_source() -> None:
    with pytest.raises(NamespaceError) as caught:
        validate_namespace("Prod", source="STEM_WORKER_NAMESPACE")
    assert str(caught.value).startswith("STEM_WORKER_NAMESPACE: ")


def test_namespace_error_is_a_config_error() -> None:
    assert issubclass(NamespaceError, ConfigError)
    assert issubclass(NamespaceError, ValueError)


def test_length_leaves_room_for_every_suffix() -> None:
    assert IDENTIFIER_LIMIT == NAMEDATALEN - 1
    assert 0 < MAX_NAMESPACE_LENGTH < IDENTIFIER_LIMIT


def _every_channel(channels: Channels) -> dict[str, str]:
    """Every channel name Channels derives, found by introspection so new ones are covered."""
    found = {}
    for name, member in inspect.getmembers(Channels):
        if isinstance(member, property):
            found[name] = getattr(channels, name)
        elif inspect.isfunction(member) and not name.startswith("_"):
            for key in ("w", "abcdef", "abcdefghijkl"):
                found[f"{name}({key!r})"] = getattr(channels, name)(key)
    return found


def test_channels_are_named_after_the_namespace() -> None:
    channels = Channels("prod-us-east")
    assert channels.jobs == "prod-us-east:jobs"
    assert channels.done == "prod-us-east:done"
    assert channels.control == "prod-us-east:control"
    assert channels.worker("abcdef") == "prod-us-east:control:abcdef"


def test_channels_of_different_namespaces_never_collide() -> None:
    first, second = _every_channel(Channels("a")), _every_channel(Channels("a-b"))
    assert not set(first.values()) & set(second.values())


def test_every_channel_of_a_max_length_namespace_fits() -> None:
    channels = _every_channel(Channels(validate_namespace(LONGEST)))
    assert {"jobs", "done", "control"} <= set(channels)
    too_long = {
        name: len(value.encode())
        for name, value in channels.items()
        if len(value.encode()) > IDENTIFIER_LIMIT
    }
    assert too_long == {}


def test_worker_channel_limits_the_key_in_bytes_not_characters() -> None:
    # Postgres counts channel names in bytes; a non-ASCII worker key cut to six
    # characters can still be twelve bytes long.
    channel = Channels(LONGEST).worker("ééééééé")
    assert len(channel.encode()) <= NAMEDATALEN - 1
