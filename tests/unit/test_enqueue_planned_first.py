"""app.enqueue on the pool (stem_pg.client.enqueue_one): a request is planned before any
connection is taken, so a bad one is its own clear error even with the database down."""

from __future__ import annotations

import pytest

from stem_pg.client.app import Stem
from stem_pg.core.errors import TaskError

NOWHERE = "postgresql://stem@127.0.0.1:1/nowhere"  # refused at once, were anything to connect


@pytest.mark.parametrize(
    ("kwargs", "options", "message"),
    [
        ({"when": object()}, {}, "argument 'when'"),
        ({}, {"priority": "high"}, "priority must be an integer"),
        ({}, {"countdown": -1}, "countdown must be a finite number"),
    ],
)
def test_a_bad_request_fails_before_a_connection_is_taken(
    kwargs: dict[str, object], options: dict[str, object], message: str
) -> None:
    app = Stem(NOWHERE, namespace="enqueue_one")
    with pytest.raises(TaskError, match=message):
        app.enqueue("t", kwargs, **options)  # type: ignore[arg-type]
    assert app.backend._pool is None  # no pool opened, no connection tried
