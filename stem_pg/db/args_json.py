"""Decoding what a worker's claims bring back: the jobs' arguments and headers (``jsonb``).

With msgspec installed (``pip install 'stem-pg[msgspec]'``) it decodes them, straight from
libpq's buffer; otherwise the standard library's ``json`` does, as psycopg's own loader
would. At 100 KB of arguments a job, decoding was about a third of a worker's CPU per
job; msgspec takes about half the time of ``json`` on a long string and on many small
records (bench/RESULTS.md, "Large payloads, continued"), and reads every value as ``json``
does, integers of any size included. (orjson, as fast, reads an integer past 64 bits as a
float: not a drop-in.) Whatever msgspec refuses goes to ``json``, which then says why.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import Loader


def _msgspec_decoder() -> Any:
    try:
        return importlib.import_module("msgspec.json").Decoder()
    except ImportError:  # pragma: no cover - the msgspec extra is in dev
        return None


#: msgspec's JSON decoder, when msgspec is installed (tests set it to None for the fallback).
_decoder = _msgspec_decoder()


def loads(data: Buffer) -> Any:
    """The JSON value of ``data`` (bytes, or a memoryview of libpq's result)."""
    if _decoder is not None:
        try:
            return _decoder.decode(data)
        except ValueError:  # msgspec.DecodeError: json decides (and explains)
            pass
    return json.loads(bytes(data))


class ArgsLoader(Loader):
    """``jsonb`` (text format) decoded by ``loads``."""

    def load(self, data: Buffer) -> Any:
        return loads(data)


def claim_cursor(cur: psycopg.AsyncCursor[Any]) -> psycopg.AsyncCursor[Any]:
    """``cur``, decoding its ``jsonb`` columns with ``loads``."""
    cur.adapters.register_loader("jsonb", ArgsLoader)
    return cur
