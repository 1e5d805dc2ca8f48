"""Signed payloads: producers sign what a job runs, workers refuse a job whose signature does not verify.

A signature covers the task name, the arguments, the headers (but itself) and the
task id, as canonical JSON. It travels in the job's headers under
``stem-signature`` as ``"<key id>:<base64url signature>"``, so every path
that copies a job (retries, dead-letter replay, canvas members enqueued by a
trigger, beat) carries it unchanged, and rows without it stay valid for workers
that do not verify.

Keys are HMAC-SHA256 secrets (who can verify can also sign) or Ed25519 key pairs
through the optional ``cryptography`` package (producers hold the private key,
workers only the public one, so a worker cannot forge a job). A signature names
its key id; workers verify against every configured key, which is how keys
rotate. Pure: no IO; error messages never contain a secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any

from stem_pg.core.errors import ConfigError

SIGNATURE_HEADER = "stem-signature"
#: The version tag that starts every signed message.
SCHEME = "stem-sig-1"
#: HMAC secrets shorter than this are refused (a guessable secret signs nothing).
MIN_SECRET_LENGTH = 16
_BLOCK = 64  # SHA-256's block size, for HMAC
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")

#: Sorted keys, no spaces, ASCII: the same text for the same values on every side.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
#: JSON strings (skipped) and numbers: the numbers jsonb spells differently are rewritten.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?')


def canonical_json(value: object) -> str:
    """``value`` as canonical JSON, spelled as a jsonb round trip reads it back.

    Postgres stores JSON numbers as exact decimals and prints them without an
    exponent: Python's ``1e+16`` comes back as the integer ``10000000000000000``
    and ``-0.0`` as ``0.0``. Both spellings here are the decimal one, so the
    producer (Python values) and the worker (values read from jsonb) agree.
    """
    text = _CANONICAL.encode(value)
    if "e+" in text or "E+" in text or "-0.0" in text:  # seldom: a rewrite only then
        text = _TOKEN.sub(_number, text)
    return text


_string = encode_basestring_ascii
_SCHEME_JSON = _string(SCHEME)


def with_signature(headers_json: str, signature: str) -> str:
    """``headers_json``, a JSON object without a signature, with ``signature`` added as its
    ``stem-signature`` header (text put together: no second encoding of the headers)."""
    entry = f'"{SIGNATURE_HEADER}":{_string(signature)}'
    return f"{{{entry}}}" if headers_json == "{}" else f"{headers_json[:-1]},{entry}}}"


def _number(match: re.Match[str]) -> str:
    token = match.group()
    if token[0] == '"':
        return token
    if "e+" in token or "E+" in token:
        return format(Decimal(token), "f")
    return "0.0" if token == "-0.0" else token


def signed_message(
    key_id: str,
    task_id: str,
    task: str,
    args: Mapping[str, Any],
    headers: Mapping[str, Any],
    free: str | None,
) -> bytes:
    """The bytes a signature covers. ``free`` names an argument left out (a canvas
    member's ``result_arg``, filled in later by the database with the previous result)."""
    if free is not None:
        args = {k: v for k, v in args.items() if k != free}
    if SIGNATURE_HEADER in headers:
        headers = {} if len(headers) == 1 else {k: v for k, v in headers.items() if k != SIGNATURE_HEADER}
    # canonical_json([SCHEME, key_id, task_id, task, args, headers, free]), built by parts:
    # the same text, without encoding the empty objects most jobs have (every worker checks
    # every job, so this is the hot path).
    parts = (
        _SCHEME_JSON,
        _string(key_id),
        _string(task_id),
        _string(task),
        canonical_json(args) if args else "{}",
        canonical_json(headers) if headers else "{}",
        "null" if free is None else _string(free),
    )
    return f"[{','.join(parts)}]".encode()


@dataclass(frozen=True)
class SigningKey:
    """One key: ``sign`` (message -> base64url signature) is None for a verify-only key
    (an Ed25519 public key); ``check(message, signature)`` says whether it verifies."""

    id: str
    kind: str  # "hmac" or "ed25519"
    check: Callable[[bytes, str], bool] = field(repr=False)
    sign: Callable[[bytes], str] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Signing:
    """The signing keys of an application or a worker, and the one new signatures use.

    Build it with ``Signing.from_spec`` (or ``parse_keys`` for STEM_SIGNING_KEYS text).
    ``active`` is None on a verify-only worker.
    """

    keys: Mapping[str, SigningKey]
    active: str | None = None

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigError("signing: no keys given")
        if self.active is not None:
            key = self.keys.get(self.active)
            if key is None:
                known = ", ".join(sorted(self.keys))
                raise ConfigError(f"signing: active key {self.active!r} is not one of the keys ({known})")
            if key.sign is None:
                raise ConfigError(f"signing: active key {self.active!r} is a public key: it cannot sign")

    @classmethod
    def from_spec(cls, keys: Mapping[str, str], active: str | None = None) -> Signing:
        """Keys from ``{key id: spec}`` (see ``parse_key``); ``active`` defaults to the only
        key that can sign, when there is exactly one."""
        parsed = {key_id: parse_key(key_id, spec) for key_id, spec in keys.items()}
        if active is None:
            signers = [k for k, key in parsed.items() if key.sign is not None]
            active = signers[0] if len(signers) == 1 else None
        return cls(parsed, active)

    @property
    def can_sign(self) -> bool:
        return self.active is not None

    def signature(
        self,
        task_id: str,
        task: str,
        args: Mapping[str, Any],
        headers: Mapping[str, Any],
        free: str | None = None,
    ) -> str:
        """The ``stem-signature`` header value of a job, ``<key id>:<base64url signature>``
        (then ``:<free argument>`` when there is one); ConfigError without an active key."""
        if self.active is None:
            raise ConfigError("signing: no active key (set STEM_SIGNING_ACTIVE_KEY) to sign with")
        key = self.keys[self.active]
        assert key.sign is not None  # checked in __post_init__
        signature = key.sign(signed_message(key.id, task_id, task, args, headers, free))
        return f"{key.id}:{signature}" if free is None else f"{key.id}:{signature}:{free}"

    def signed_headers(
        self,
        task_id: str,
        task: str,
        args: Mapping[str, Any],
        headers: Mapping[str, Any],
        free: str | None = None,
    ) -> dict[str, Any]:
        """``headers`` with a fresh ``stem-signature`` (replacing an old one)."""
        signed = {k: v for k, v in headers.items() if k != SIGNATURE_HEADER}
        signed[SIGNATURE_HEADER] = self.signature(task_id, task, args, signed, free)
        return signed

    def problem(
        self,
        task_id: str,
        task: str,
        args: Mapping[str, Any] | None,
        headers: Mapping[str, Any] | None,
        signature: str | None = None,
    ) -> str | None:
        """None when the job's signature verifies, else why not (names the key id, never a secret).
        The signature is ``signature`` when given (read apart from the headers), else the
        ``stem-signature`` header."""
        headers = headers or {}
        args = args or {}
        if not (type(headers) is dict or isinstance(headers, Mapping)) or not (
            type(args) is dict or isinstance(args, Mapping)
        ):
            return "headers or arguments are not JSON objects"  # rows written by hand
        value = signature if signature is not None else headers.get(SIGNATURE_HEADER)
        if value is None:
            return "unsigned"
        if type(value) is not str:
            return "malformed signature header"
        key_id, _, rest = value.partition(":")
        signature, declared, free = rest.partition(":")
        key = self.keys.get(key_id)
        if key is None:
            return f"signed with unknown key {key_id[:64]!r}"
        message = signed_message(key_id, task_id, task, args, headers, free if declared else None)
        if not key.check(message, signature):
            return f"bad signature (key {key_id!r})"
        return None


# -- keys -----------------------------------------------------------------------------


def parse_keys(text: str, *, source: str = "STEM_SIGNING_KEYS") -> dict[str, SigningKey]:
    """``id=spec,id=spec`` (or a JSON object ``{"id": "spec"}``) into keys; ConfigError naming
    the key id, never the secret."""
    text = text.strip()
    if text.startswith("{"):
        try:
            raw = json.loads(text)
        except ValueError:
            raise ConfigError(f"{source}: not a valid JSON object of key id -> key") from None
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise ConfigError(f"{source}: a JSON value must map each key id to a string")
        pairs = list(raw.items())
    else:
        pairs = []
        for position, entry in enumerate(text.split(","), start=1):
            key_id, sep, spec = entry.strip().partition("=")
            if not sep:
                raise ConfigError(f"{source}: entry {position} is not <key id>=<secret>")
            pairs.append((key_id.strip(), spec.strip()))
    keys: dict[str, SigningKey] = {}
    for key_id, spec in pairs:
        if key_id in keys:
            raise ConfigError(f"{source}: key id {key_id!r} appears twice")
        keys[key_id] = parse_key(key_id, spec, source=source)
    if not keys:
        raise ConfigError(f"{source}: no keys given")
    return keys


def parse_key(key_id: str, spec: str, *, source: str = "signing") -> SigningKey:
    """One key: ``hmac:<secret>`` (or a bare secret), ``ed25519:<base64 32-byte private key>``,
    ``ed25519-public:<base64 32-byte public key>``."""
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise ConfigError(f"{source}: key id {key_id!r} must be 1-64 of A-Z a-z 0-9 _ . -")
    if not isinstance(spec, str):
        raise ConfigError(f"{source}: key {key_id!r} must be a string")
    kind, sep, material = spec.partition(":")
    if sep and kind in ("ed25519", "ed25519-public"):
        return _ed25519(key_id, kind, material, source)
    if sep and kind == "hmac":
        spec = material
    if len(spec) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{source}: key {key_id!r}: an HMAC secret needs at least {MIN_SECRET_LENGTH} characters"
        )
    mac = _hmac_sha256(spec.encode())

    def sign(message: bytes) -> str:
        return _b64(mac(message))

    def check(message: bytes, signature: str) -> bool:
        return signature.isascii() and hmac.compare_digest(sign(message), signature)

    return SigningKey(key_id, "hmac", check, sign)


def _hmac_sha256(secret: bytes) -> Callable[[bytes], bytes]:
    """HMAC-SHA256 (RFC 2104) with the key's inner and outer pads hashed once: the same
    digest as ``hmac.new(secret, message, sha256)``, at half its cost per message."""
    if len(secret) > _BLOCK:
        secret = hashlib.sha256(secret).digest()
    block = secret.ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def mac(message: bytes) -> bytes:
        digest = inner.copy()
        digest.update(message)
        result = outer.copy()
        result.update(digest.digest())
        return result.digest()

    return mac


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _ed25519(key_id: str, kind: str, material: str, source: str) -> SigningKey:
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
    except ImportError:
        raise ConfigError(
            f"{source}: key {key_id!r} is an Ed25519 key: install stem-pg[signing] (the cryptography package)"
        ) from None
    try:
        standard = material.strip().replace("-", "+").replace("_", "/")
        raw = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ConfigError(f"{source}: key {key_id!r}: an {kind} key is 32 bytes in base64")
    if kind == "ed25519":
        private = Ed25519PrivateKey.from_private_bytes(raw)
        public = private.public_key()

        def sign(message: bytes) -> str:
            return _b64(private.sign(message))

        signer: Callable[[bytes], str] | None = sign
    else:
        public = Ed25519PublicKey.from_public_bytes(raw)
        signer = None

    def check(message: bytes, signature: str) -> bool:
        try:
            public.verify(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)), message)
        except (InvalidSignature, ValueError):
            return False
        return True

    return SigningKey(key_id, "ed25519", check, signer)
