"""What Postgres can store: JSON that ``jsonb`` accepts and text that a ``text`` column accepts.

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


def encode_storable(value: object, *, what: str) -> str:
    """``value`` as JSON that a jsonb column stores unchanged.

    Raises TaskError naming ``what`` when it is no JSON (objects, NaN and infinities,
    circular or too deeply nested data), or when jsonb would refuse it: a NUL character
    or an unpaired surrogate in a string or a key (the message gives its JSON path).
    """
    try:
        text = STRICT_JSON.encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise TaskError(f"{what} must be JSON-serialisable: {exc}") from None
    check_encoded(text, value, what=what)
    return text


def check_encoded(text: str, value: object, *, what: str) -> None:
    """Raise TaskError when ``text`` (STRICT_JSON's encoding of ``value``) is JSON jsonb refuses."""
    # Both substrings are rare (emoji are surrogate pairs, though): the scan runs seldom.
    if ("\\u0000" in text or "\\ud" in text) and any(m.group(1) for m in _ESCAPE.finditer(text)):
        raise TaskError(f"{what} is not storable: {_flaw_in(value, '$') or 'a character jsonb refuses'}")


def check_text(text: str, *, what: str) -> str:
    """``text``, or a TaskError naming ``what`` when a text column would refuse it."""
    flaw = _flaw(text)
    if flaw:
        raise TaskError(f"{what} {text!r} is not storable: {flaw}")
    return text


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
