"""Payload signing, the pure part: canonical JSON, HMAC and Ed25519 keys, rotation, bad key specs."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest

from stem_pg.config.settings import StemConfig
from stem_pg.core.errors import ConfigError
from stem_pg.core.planning import EnqueueRequest, Planner
from stem_pg.core.routing_registry import RoutingRegistry
from stem_pg.core.signing import (
    SCHEME,
    SIGNATURE_HEADER,
    Signing,
    canonical_json,
    parse_keys,
    signed_message,
    with_signature,
)
from stem_pg.core.tasks import TaskRegistry

OLD = "old-secret-0123456789"
NEW = "new-secret-9876543210"


def test_canonical_json_spells_numbers_as_jsonb_reads_them_back() -> None:
    # Postgres prints 1e+16 as 10000000000000000 (read back as an int) and -0.0 as 0.0.
    assert canonical_json({"b": 1e16, "a": -0.0}) == canonical_json({"a": 0.0, "b": 10**16})
    assert canonical_json([1.5e-7, "e+1 -0.0", 1e23]) == '[1.5e-07,"e+1 -0.0",100000000000000000000000]'
    assert canonical_json({"z": "é", "a": [1, {"y": 2, "x": 1}]}) == '{"a":[1,{"x":1,"y":2}],"z":"\\u00e9"}'


def signed(signing: Signing, args: dict[str, Any], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return signing.signed_headers("id-1", "app.task", args, headers or {})


def test_hmac_signature_verifies_and_covers_name_args_headers_and_id() -> None:
    signing = Signing.from_spec({"k1": OLD})
    headers = signed(signing, {"n": 1}, {"h": "x"})
    assert headers[SIGNATURE_HEADER].startswith("k1:")
    # As the worker reads them back: JSON round trip.
    headers = json.loads(json.dumps(headers))
    assert signing.problem("id-1", "app.task", {"n": 1}, headers) is None
    assert signing.problem("id-1", "app.task", {"n": 2}, headers) == "bad signature (key 'k1')"
    assert signing.problem("id-2", "app.task", {"n": 1}, headers) == "bad signature (key 'k1')"
    assert signing.problem("id-1", "app.other", {"n": 1}, headers) == "bad signature (key 'k1')"
    assert signing.problem("id-1", "app.task", {"n": 1}, {**headers, "h": "y"}) == "bad signature (key 'k1')"
    assert signing.problem("id-1", "app.task", {"n": 1}, {"h": "x"}) == "unsigned"
    assert signing.problem("id-1", "app.task", {"n": 1}, None) == "unsigned"
    assert signing.problem("id-1", "app.task", {}, {SIGNATURE_HEADER: 5}) == "malformed signature header"
    assert signing.problem("id-1", "app.task", {}, {SIGNATURE_HEADER: "x"}) == "signed with unknown key 'x'"
    non_ascii = {**headers, SIGNATURE_HEADER: "k1:é"}
    assert signing.problem("id-1", "app.task", {"n": 1}, non_ascii) == "bad signature (key 'k1')"
    not_objects = "headers or arguments are not JSON objects"
    assert signing.problem("id-1", "app.task", {}, [1]) == not_objects  # type: ignore[arg-type]
    assert signing.problem("id-1", "app.task", [1], headers) == not_objects  # type: ignore[arg-type]


def test_rotation_old_key_still_verifies_new_key_signs() -> None:
    before = Signing.from_spec({"k1": OLD})
    after = Signing.from_spec({"k1": OLD, "k2": NEW}, active="k2")
    old_job = signed(before, {"n": 1})
    new_job = signed(after, {"n": 1})
    assert new_job[SIGNATURE_HEADER].startswith("k2:")
    assert after.problem("id-1", "app.task", {"n": 1}, old_job) is None
    assert after.problem("id-1", "app.task", {"n": 1}, new_job) is None
    assert before.problem("id-1", "app.task", {"n": 1}, new_job) == "signed with unknown key 'k2'"
    # The old key's secret under the new key's id does not pass for the new key.
    forged = signed(Signing.from_spec({"k2": OLD}), {"n": 1})
    assert after.problem("id-1", "app.task", {"n": 1}, forged) == "bad signature (key 'k2')"


def test_free_argument_is_left_out_and_declared() -> None:
    signing = Signing.from_spec({"k1": OLD})
    headers = signing.signed_headers("id-1", "app.task", {"n": 1}, {}, free="prev")
    assert signing.problem("id-1", "app.task", {"n": 1, "prev": [1, 2]}, headers) is None
    assert signing.problem("id-1", "app.task", {"n": 2, "prev": [1, 2]}, headers) is not None
    assert headers[SIGNATURE_HEADER].endswith(":prev")
    undeclared = {SIGNATURE_HEADER: headers[SIGNATURE_HEADER].removesuffix(":prev")}
    assert signing.problem("id-1", "app.task", {"n": 1, "prev": 3}, undeclared) is not None


def test_planner_signs_jobs_and_broadcast_free_jobs_with_the_active_key() -> None:
    planner = Planner(TaskRegistry(), RoutingRegistry(), default_max_retries=3)
    assert json.loads(planner.plan(EnqueueRequest("app.task", {"n": 1})).headers) == {}
    planner.signing = Signing.from_spec({"k1": OLD})
    spec = planner.plan(EnqueueRequest("app.task", {"n": 1.0, "big": 1e20}, headers={"h": 1}))
    headers = json.loads(spec.headers)
    assert headers["h"] == 1
    args = json.loads(spec.args)
    assert planner.signing.problem(spec.id, "app.task", args, headers) is None


@pytest.mark.parametrize(
    ("keys", "active", "message"),
    [
        ("k1", None, "STEM_SIGNING_KEYS: entry 1 is not <key id>=<secret>"),
        ("k1=short-s3cret", None, "STEM_SIGNING_KEYS: key 'k1': an HMAC secret needs at least 16 characters"),
        (f"k1={OLD},k1={NEW}", None, "STEM_SIGNING_KEYS: key id 'k1' appears twice"),
        (f"bad id={OLD}", None, "STEM_SIGNING_KEYS: key id 'bad id' must be 1-64 of A-Z a-z 0-9 _ . -"),
        ('{"k1": 5}', None, "STEM_SIGNING_KEYS: a JSON value must map each key id to a string"),
        ("{k1", None, "STEM_SIGNING_KEYS: not a valid JSON object of key id -> key"),
        (f"k1={OLD}", "k9", "STEM_SIGNING_ACTIVE_KEY: 'k9' is not a key id of STEM_SIGNING_KEYS (k1)"),
        ("", "k1", "STEM_SIGNING_ACTIVE_KEY is set but STEM_SIGNING_KEYS is not"),
    ],
)
def test_bad_key_config_is_one_line_without_the_secret(keys: str, active: str | None, message: str) -> None:
    env = {"STEM_SIGNING_KEYS": keys, **({"STEM_SIGNING_ACTIVE_KEY": active} if active else {})}
    with pytest.raises(ConfigError) as raised:
        StemConfig.from_environment(env)
    assert str(raised.value) == message
    assert "s3cret" not in str(raised.value) and OLD not in str(raised.value)


def test_environment_keys_json_form_and_several_keys_need_an_active_one() -> None:
    config = StemConfig.from_environment({"STEM_SIGNING_KEYS": json.dumps({"k1": OLD, "k2": f"hmac:{NEW}"})})
    assert config.signing is not None and config.signing.active is None  # two keys: which one signs?
    env = {"STEM_SIGNING_KEYS": f"k1={OLD}, k2={NEW}", "STEM_SIGNING_ACTIVE_KEY": "k2"}
    config = StemConfig.from_environment(env)
    assert config.signing is not None and config.signing.active == "k2"
    assert StemConfig.from_environment({}).signing is None


def test_ed25519_private_key_signs_public_key_only_verifies() -> None:
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    seed = os.urandom(32)
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    producer = Signing.from_spec({"ed": "ed25519:" + base64.b64encode(seed).decode()})
    worker = Signing.from_spec({"ed": "ed25519-public:" + base64.urlsafe_b64encode(public).decode()})
    assert producer.active == "ed" and worker.active is None
    headers = signed(producer, {"n": 1})
    assert worker.problem("id-1", "app.task", {"n": 1}, headers) is None
    assert worker.problem("id-1", "app.task", {"n": 2}, headers) == "bad signature (key 'ed')"
    with pytest.raises(ConfigError, match="cannot sign"):
        Signing(worker.keys, "ed")
    with pytest.raises(ConfigError, match="an ed25519-public key is 32 bytes in base64"):
        parse_keys("ed=ed25519-public:AAAA")


@pytest.mark.parametrize(
    ("args", "headers", "free"),
    [
        ({}, {}, None),
        ({"b": 1e16, "a": [1, "é"]}, {"h": -0.0, SIGNATURE_HEADER: {}}, "prev"),
        ({"prev": 1}, {}, "prev"),
    ],
)
def test_signed_message_is_the_canonical_json_of_its_parts(
    args: dict[str, Any], headers: dict[str, Any], free: str | None
) -> None:
    kept_args = {k: v for k, v in args.items() if k != free}
    kept_headers = {k: v for k, v in headers.items() if k != SIGNATURE_HEADER}
    expected = canonical_json([SCHEME, "k1", "id-\u00e9", "app.task", kept_args, kept_headers, free])
    assert signed_message("k1", "id-\u00e9", "app.task", args, headers, free) == expected.encode()


@pytest.mark.parametrize("secret", ["s" * 16, "long" * 40])
def test_hmac_is_rfc_2104_hmac_sha256(secret: str) -> None:
    import hashlib
    import hmac

    signing = Signing.from_spec({"k1": secret})
    message = signed_message("k1", "id-1", "app.task", {"n": 1}, {}, None)
    expected = base64.urlsafe_b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest())
    assert signing.signature("id-1", "app.task", {"n": 1}, {}) == "k1:" + expected.rstrip(b"=").decode()


def test_with_signature_adds_the_header_to_json_text() -> None:
    odd = 'k1:abc:we"ird\u00e9'
    assert json.loads(with_signature("{}", odd)) == {SIGNATURE_HEADER: odd}
    assert json.loads(with_signature('{"a":[1,{}]}', "k1:abc")) == {"a": [1, {}], SIGNATURE_HEADER: "k1:abc"}
