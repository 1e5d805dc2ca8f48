"""The web dashboard: server-rendered pages over the same views and library calls as the CLI.

Needs the ``dashboard`` extra (``pip install 'stem_pg[dashboard]'``).
"""

from __future__ import annotations

from stem_pg.dashboard.app import create_app
from stem_pg.dashboard.settings import DashboardAuth

__all__ = ["DashboardAuth", "create_app"]
