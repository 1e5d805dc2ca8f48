"""Every code block of README.md runs as printed, in a scratch project on a fresh database.

How a block is run (write new README blocks to these rules):

* Blocks run in README order, section by section (a ``## `` heading starts a section), in an
  empty project directory (the current directory, importable), against a database created for
  the run, with ``STEM_BROKER_URL`` pointing at it and ``stem`` on PATH. No other ``STEM_*``
  variable is set.
* A block whose first line is a path comment (``# myapp/tasks.py``, ``# config/routing.yaml``)
  is that file: it is written there, not run.
* ``bash`` blocks run with ``bash -euo pipefail``; variables a block exports are seen by the
  later blocks of its section, as in one shell (and by its Python session, which starts at the
  section's first ``python`` block with the variables exported before it).
* ``python`` blocks of one section run in one interpreter, in order, sharing their names (so a
  section's first block imports what it uses); top-level ``await`` works, as in
  ``python -m asyncio``.
* ``sql`` blocks run on the database (psycopg, autocommit) after the blocks before them.
* ``text`` blocks starting with ``$ command`` are transcripts: the command runs in bash and must
  print exactly the lines that follow (stdout, then stderr). Other ``text`` blocks are output;
  so are ``json`` blocks without a path comment, which must parse (whole, or line by line).
* A marker, an HTML comment on the line right before the opening fence, changes that:
  ``<!-- readme: background -->`` runs the (bash) block in the background until the end of its
  section (a worker, beat), where it gets SIGINT as from Ctrl-C; it must not have failed before then.
  ``<!-- readme: skip (why) -->`` does not run the block; the reason is required. Keep skips rare.

A failure names the README line of the block and shows what it printed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.readme_blocks import parse, readme_blocks, sections
from tests.acceptance.readme_runner import Project
from tests.databases import private_database

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


@pytest.mark.timeout(600)
def test_every_readme_block_runs_as_printed(database_url: str, tmp_path: Path) -> None:
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    with private_database(database_url, prefix="readme") as url:
        project = Project(project_dir, url, README, REPO)
        for _section, blocks in sections(readme_blocks(README)):
            project.run_section(blocks)


def test_markers_and_path_comments_are_read() -> None:
    text = (
        "## One\n\n```python\n# myapp/tasks.py\nx = 1\n```\n\n"
        "<!-- readme: background -->\n```bash\nstem worker run\n```\n"
        "## Two\n<!-- readme: skip (needs docker) -->\n```bash\ndocker compose up\n```\n"
    )
    one, two, three = parse(text)
    assert (one.line, one.lang, one.path, one.section) == (3, "python", "myapp/tasks.py", "One")
    assert (two.marker, two.path, two.body) == ("background", None, "stem worker run\n")
    assert (three.marker, three.reason, three.section) == ("skip", "needs docker", "Two")
