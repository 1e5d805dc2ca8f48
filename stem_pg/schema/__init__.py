"""The namespace schema: migrations and their helpers, health checks, the SQLAlchemy tables.

``metadata_for(namespace)`` is loaded lazily, so running a migration does not import the
table descriptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stem_pg.schema.tables import metadata_for

__all__ = ["metadata_for"]


def __getattr__(name: str) -> Any:
    if name == "metadata_for":
        from stem_pg.schema import tables

        return tables.metadata_for
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
