"""``python -m stem_pg`` runs the ``stem`` command line."""

from stem_pg.cli import main

main()
