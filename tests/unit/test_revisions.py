"""The shipped migrations as a starting worker reads them (no alembic) match alembic's reading."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from stem_pg.schema.migrate import alembic_config
from stem_pg.schema.revisions import head_revision, is_older_than_head, shipped


def test_the_revision_chain_is_alembics() -> None:
    script = ScriptDirectory.from_config(alembic_config("stem", None))
    assert head_revision() == script.get_current_head()
    assert list(shipped()) == [rev.revision for rev in reversed(list(script.walk_revisions()))]
    assert is_older_than_head(shipped()[0])
    assert not is_older_than_head(head_revision())
    assert not is_older_than_head("9999")  # a newer version's migration
