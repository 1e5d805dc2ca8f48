"""The control plane's wire format and vocabulary (pure: no database)."""

from __future__ import annotations

import pytest

from stem_pg.core.control import (
    Command,
    ControlError,
    is_durable,
    request_key,
    worker_key,
)
from stem_pg.core.namespaces import Channels


def test_a_command_is_for_its_targets_or_for_everyone() -> None:
    assert Command("ping").addressed_to("anyone")
    assert Command("ping", targets=("a",)).addressed_to("a")
    assert not Command("ping", targets=("a",)).addressed_to("b")


def test_a_command_too_large_for_notify_is_refused() -> None:
    with pytest.raises(ControlError, match="too large"):
        Command("revoke", args={"ids": ["x" * 100] * 100}).encode()


def test_worker_keys_are_six_hex_characters_and_stable() -> None:
    key = worker_key("some-host.example.com.1234.abcdef-3")
    assert len(key) == 6 and int(key, 16) >= 0
    assert worker_key("some-host.example.com.1234.abcdef-3") == key
    assert worker_key("some-host.example.com.1234.abcdef-4") != key


def test_control_channels_are_namespaced() -> None:
    channels = Channels("staging")
    assert channels.broadcasts == "staging:broadcasts"
    assert channels.reply("a1b2c3") == "staging:reply:a1b2c3"
    assert channels.worker(worker_key("w")) != Channels("prod").worker(worker_key("w"))


def test_durability_values() -> None:
    assert is_durable("durable") and is_durable("Persistent")
    assert not is_durable(None) and not is_durable("transient")


def test_the_reply_hint_channel_follows_from_the_command_id() -> None:
    """Workers derive it from the command row; nobody gets to name it."""
    command = Command("ping")
    key = request_key(command.id)
    assert len(key) == 6 and key == request_key(command.id) != request_key(Command("ping").id)
    assert Channels("prod").reply(key) == f"prod:reply:{key}"
