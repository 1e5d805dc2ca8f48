"""app.enqueue on the pool (stem_pg.client.enqueue_one), on a real Postgres: its statement
goes through a cursor that stays with the pool connection, made once, not one per job."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.db.stores.enqueue import _CURSOR


def _kept_cursors(app: Stem) -> set[int]:
    """The ids of the enqueue cursors kept with the pool's idle connections."""
    taken = [app.pool.getconn() for _ in range(app.pool.get_stats()["pool_available"])]
    try:
        kept: list[Any] = [getattr(conn, _CURSOR, None) for conn in taken]
        return {id(cursor) for cursor in kept if cursor is not None and not cursor.closed}
    finally:
        for conn in taken:
            app.pool.putconn(conn)


def test_enqueues_on_the_pool_keep_one_cursor_per_connection(app: Stem) -> None:
    ids = [app.enqueue("t", {"n": n}).id for n in range(3)]
    first = _kept_cursors(app)
    assert first  # the connection that inserted keeps its cursor
    ids += [app.enqueue("t", {"n": n}).id for n in range(3, 10)]
    assert _kept_cursors(app) == first  # the same cursors again: none made per call
    with app.pool.connection() as conn:
        query = sql.SQL("SELECT count(*) FROM {} WHERE id = ANY(%s)").format(
            sql.Identifier(app.namespace, "jobs")
        )
        assert conn.execute(query, (ids,)).fetchone() == (10,)
