"""The heartbeat topic's payload: round trip, a bound size whatever the names, and tolerance
of payloads that are not beats."""

from __future__ import annotations

import json

import pytest

from stem_pg.core.heartbeats import NAME_LIMIT, PAYLOAD_LIMIT, Beat, decode, encode
from stem_pg.core.namespaces import MAX_NAMESPACE_LENGTH, Channels

BEAT = Beat("web-1.4242.a1b2c3", "alive", "web-1", 4242, 10, 3, 1520, 4, 7512.34)


def test_a_beat_round_trips_with_uptime_to_a_tenth() -> None:
    payload = encode(BEAT)
    assert json.loads(payload) == {
        "worker": "web-1.4242.a1b2c3", "status": "alive", "host": "web-1", "pid": 4242,
        "concurrency": 10, "inflight": 3, "processed": 1520, "failed": 4, "uptime": 7512.3,
    }  # fmt: skip
    assert decode(payload) == Beat(**{**BEAT.__dict__, "uptime": 7512.3})


def test_the_payload_stays_small_whatever_the_names() -> None:
    huge = Beat("\x00" * 10_000, "stopped", "\U0010ffff" * 10_000, 2**62, 2**62, 2**62, 2**62, 2**62, 1e300)
    payload = encode(huge)
    assert len(payload.encode()) <= PAYLOAD_LIMIT < 8000
    beat = decode(payload)
    assert beat is not None and beat.worker == "\x00" * NAME_LIMIT


@pytest.mark.parametrize(
    "payload",
    ["", "*", "queue-a", "[1]", '{"worker": "w"}', encode(BEAT).replace('"alive"', '"dancing"'),
     encode(BEAT).replace("4242,", "true,"), encode(BEAT).replace("7512.3", '"long"')],
)  # fmt: skip
def test_what_is_not_a_beat_decodes_to_none(payload: str) -> None:
    assert decode(payload) is None


def test_unknown_fields_are_ignored() -> None:
    payload = json.dumps({**json.loads(encode(BEAT)), "newer": [1, 2]})
    assert decode(payload) is not None


def test_the_channel_is_named_after_the_namespace_within_63_bytes() -> None:
    assert Channels("prod").heartbeats == "prod:heartbeats"
    assert len(Channels("n" * MAX_NAMESPACE_LENGTH).heartbeats.encode()) <= 63
