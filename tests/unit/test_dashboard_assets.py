"""The dashboard's vendored assets are the pinned upstream files, with their licences, and no
page or script of ours loads anything from the internet."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import stem_pg

DASHBOARD = Path(stem_pg.__file__).parent / "dashboard"
STATIC = DASHBOARD / "static"

#: npm tarballs htmx.org@2.0.4 and uplot@1.6.31, files taken unmodified (static/VENDORED.md).
PINNED = {
    "htmx.min.js": "e209dda5c8235479f3166defc7750e1dbcd5a5c1808b7792fc2e6733768fb447",
    "uPlot.iife.min.js": "2d27e8ad3d228164525ce213f9dc716f39b4e3aee0cc773fb3491c96cf4921a2",
    "uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
}


def test_vendored_files_are_the_pinned_versions_with_their_licences() -> None:
    for name, sha256 in PINNED.items():
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == sha256, name
    licences = {p.name for p in (STATIC / "licenses").iterdir()}
    assert licences == {"htmx-2.0.4-LICENSE.txt", "uPlot-1.6.31-LICENSE.txt"}
    vendored = (STATIC / "VENDORED.md").read_text()
    assert "| 2.0.4 |" in vendored and "| 1.6.31 |" in vendored


def test_no_page_or_script_of_ours_loads_from_the_internet() -> None:
    ours = [*(DASHBOARD / "templates").glob("*.html"), STATIC / "dashboard.js", STATIC / "dashboard.css"]
    for path in ours:
        text = path.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), path.name
        assert "url(http" not in text and "@import" not in text, path.name
