"""What Postgres can store: JSON that ``jsonb`` accepts and text that a ``text`` column accepts,
within stem_pg's limits (nesting depth, payload size, name length).

Python's json module writes what jsonb refuses: the escape ``\\u0000`` (a NUL
character) and unpaired UTF-16 surrogates (Python strings may hold lone surrogates,
from ``surrogateescape`` decoding for instance); a text column refuses both too. One
such value in a batched write makes Postgres refuse the whole statement, so values
are checked here, where whoever produced one can still be told which it was.
"""

from __future__ import annotations

import json
import re
from typing import Any

from stem_pg.core.errors import TaskError

#: One encoder for every value: ``json.dumps`` with options builds a new one per call.
#: ASCII output: every character jsonb could refuse shows up as a ``\\u`` escape.
STRICT_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))

#: Every escape sequence of STRICT_JSON's output, left to right (an escaped backslash and
#: a surrogate pair each count as one); group 1 holds the code of an escape jsonb refuses.
_ESCAPE = re.compile(r"\\(?:ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2}|u(0000|d[89a-f][0-9a-f]{2})|.)")
#: A surrogate code point that is not half of a high-low pair.
_LONE_SURROGATE = re.compile("[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]")
_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")

#: The deepest nesting of lists and mappings a JSON value may have (the value itself is level 0).
#: Python's encoder and decoder recurse per level: much deeper data crashes them, and no sane
#: task argument comes near it.
MAX_DEPTH = 100
#: The largest JSON (in bytes) a job's kwargs, its headers, a workflow's params or an event's
#: payload may have unless ``Stem(max_payload_bytes=...)`` / STEM_MAX_PAYLOAD_BYTES say otherwise.
#: Every row is read whole by a worker and copied by each retry: big data belongs in storage
#: the task fetches, with its address in the arguments.
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
#: The longest task name, queue name, header key, task id, lock key or event topic (characters).
MAX_NAME_LENGTH = 255
#: How much of a refused value an error message shows.
_SHOWN = 60


def encode_storable(
    value: object, *, what: str, max_bytes: int | None = None, max_depth: int | None = None
) -> str:
    """``value`` as JSON that a jsonb column stores unchanged.

    Raises TaskError naming ``what`` when it is no JSON (objects, NaN and infinities,
    circular or too deeply nested data), or when jsonb would refuse it: a NUL character
    or an unpaired surrogate in a string or a key (the message gives its JSON path).
    Input (arguments, headers, params) also gets stem_pg's limits: nested at most
    ``max_depth`` levels (MAX_DEPTH), at most ``max_bytes`` long; what a worker writes
    (results, progress) does not.
    """
    if value is None and (max_bytes is None or max_bytes >= 4):  # a handler's usual result
        return "null"  # what STRICT_JSON says, without a pass through the encoder per job
    try:
        text = STRICT_JSON.encode(value)
    except RecursionError as exc:
        if max_depth is not None:
            check_depth(value, what=what, max_depth=max_depth)  # raises for data this deep
        raise TaskError(f"{what} must be JSON-serialisable: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise TaskError(f"{what} must be JSON-serialisable: {exc}") from None
    check_encoded(text, value, what=what, max_bytes=max_bytes, max_depth=max_depth)
    return text


def check_encoded(
    text: str, value: object, *, what: str, max_bytes: int | None = None, max_depth: int | None = None
) -> None:
    """Raise TaskError when ``text`` (STRICT_JSON's encoding of ``value``) is JSON jsonb refuses,
    is longer than ``max_bytes`` or nested more than ``max_depth`` levels (when given)."""
    if max_bytes is not None and len(text) > max_bytes:  # ASCII output: characters are bytes
        raise TaskError(f"{what} is {len(text)} bytes of JSON; the limit is {max_bytes} (max_payload_bytes)")
    # Both substrings are rare (emoji are surrogate pairs, though): the scan runs seldom.
    if ("\\u0000" in text or "\\ud" in text) and any(m.group(1) for m in _ESCAPE.finditer(text)):
        raise TaskError(f"{what} is not storable: {_flaw_in(value, '$') or 'a character jsonb refuses'}")
    # Nesting needs an opening bracket per level: a value with few brackets is shallow enough.
    if max_depth is not None and text.count("[") + text.count("{") > max_depth:
        check_depth(value, what=what, max_depth=max_depth)


def check_depth(value: object, *, what: str, max_depth: int = MAX_DEPTH) -> None:
    """Raise TaskError when ``value`` nests lists and mappings more than ``max_depth`` levels deep.

    Iterative, and it stops at the first level too deep: it cannot itself recurse too deeply,
    and a value that refers to itself is "too deep" too.
    """
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth >= max_depth:
                raise TaskError(f"{what} is nested more than {max_depth} levels deep")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def check_text(text: str, *, what: str, max_length: int | None = None) -> str:
    """``text``, or a TaskError naming ``what`` when a text column would refuse it or it is
    longer than ``max_length`` characters."""
    if max_length is not None and len(text) > max_length:
        raise TaskError(f"{what} {shown(text)} is {len(text)} characters long; the limit is {max_length}")
    flaw = _flaw(text)
    if flaw:
        raise TaskError(f"{what} {shown(text)} is not storable: {flaw}")
    return text


def shown(value: object) -> str:
    """``repr(value)``, cut short: an error message names a refused value, never repeats a megabyte."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 5]}...{text[-2:]}"


def storable_text(text: str) -> str:
    """``text`` with what a text column refuses escaped: NUL as ``\\x00``, a lone surrogate
    as ``\\udXXX``. For text the worker writes itself (error messages, tracebacks)."""
    text = text.replace("\x00", "\\x00")
    if not text.isascii():
        text = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text


def _flaw_in(value: object, path: str) -> str | None:
    """What jsonb refuses in ``value`` and where, e.g. "NUL character at $.items[3]"."""
    if isinstance(value, str):
        flaw = _flaw(value)
        return f"{flaw} at {path}" if flaw else None
    if isinstance(value, dict):
        for key, item in value.items():
            child = _child(path, key)
            flaw = _flaw(key) if isinstance(key, str) else None
            if flaw:
                return f"{flaw} in the key at {child}"
            found = _flaw_in(item, child)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _flaw_in(item, f"{path}[{index}]")
            if found:
                return found
    return None


def _flaw(text: str) -> str | None:
    if "\x00" in text:
        return "NUL character"
    if not text.isascii() and _LONE_SURROGATE.search(text):
        return "unpaired surrogate"
    return None


def _child(path: str, key: Any) -> str:
    name = key if isinstance(key, str) else STRICT_JSON.encode(key)
    if name and not name[0].isdigit() and not _NOT_IDENTIFIER.search(name):
        return f"{path}.{name}"
    return f"{path}[{json.dumps(name)}]"
