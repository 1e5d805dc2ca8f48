"""The storable-value checks of stem_pg.core.storable agree with Postgres's jsonb."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from stem_pg.core.errors import TaskError
from stem_pg.core.storable import STRICT_JSON, encode_storable
from tests.unit.test_storable import REFUSED, STORED


@pytest.mark.parametrize(("value", "flaw"), REFUSED)
def test_what_the_check_refuses_jsonb_refuses(value: Any, flaw: str, db: psycopg.Connection[Any]) -> None:
    with pytest.raises(TaskError):
        encode_storable(value, what="v")
    with pytest.raises(psycopg.DataError):
        db.execute("SELECT %s::jsonb", (STRICT_JSON.encode(value),))


@pytest.mark.parametrize("value", STORED)
def test_what_the_check_accepts_jsonb_stores_unchanged(value: Any, db: psycopg.Connection[Any]) -> None:
    text = encode_storable(value, what="v")
    row = db.execute("SELECT %s::jsonb", (text,)).fetchone()
    assert row is not None and row[0] == json.loads(text)
