"""The fenced code blocks of README.md, with their section, line and run marker (pure parsing).

The conventions are documented in tests/acceptance/test_readme.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*readme:\s*(?P<kind>[\w-]+)\s*(?:\((?P<why>.*)\))?\s*-->\s*$")
PATH_COMMENT = re.compile(r"^#\s+(?P<path>[\w./-]+\.(?:py|ya?ml|json|toml|cfg|txt))\b")
KINDS = ("background", "skip")


@dataclass(frozen=True)
class Block:
    """One fenced block: ``line`` is the README line of its opening fence (1-based)."""

    line: int
    lang: str
    body: str
    section: str
    marker: str | None = None
    reason: str | None = None

    @property
    def path(self) -> str | None:
        """The file this block is, when its first line is a path comment (``# myapp/tasks.py``)."""
        first = self.body.split("\n", 1)[0]
        found = PATH_COMMENT.match(first)
        return found["path"] if found else None

    @property
    def where(self) -> str:
        return f"README.md:{self.line} ({self.lang or 'no language'} block in '{self.section}')"


def parse(text: str) -> list[Block]:
    """Every fenced block of ``text`` in order; a marker is the line right before a fence."""
    blocks: list[Block] = []
    lines = text.split("\n")
    section = "(top)"
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = FENCE.match(line)
        if line.startswith("## "):
            section = line[3:].strip()
        if not fence:
            index += 1
            continue
        indent = len(fence["indent"])
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"README.md:{index + 1}: code block is never closed")
        body = "\n".join(row[indent:] for row in lines[index + 1 : end]) + "\n"
        marker = MARKER.match(lines[index - 1]) if index else None
        if marker and marker["kind"] not in KINDS:
            raise ValueError(f"README.md:{index}: unknown readme marker {marker['kind']!r}")
        blocks.append(
            Block(
                line=index + 1,
                lang=fence["lang"].lower(),
                body=body,
                section=section,
                marker=marker["kind"] if marker else None,
                reason=(marker["why"] or "").strip() or None if marker else None,
            )
        )
        index = end + 1
    return blocks


def readme_blocks(readme: Path) -> list[Block]:
    return parse(readme.read_text(encoding="utf-8"))


def sections(blocks: list[Block]) -> list[tuple[str, list[Block]]]:
    """The blocks grouped by their ``## `` section, in README order."""
    grouped: list[tuple[str, list[Block]]] = []
    for block in blocks:
        if not grouped or grouped[-1][0] != block.section:
            grouped.append((block.section, []))
        grouped[-1][1].append(block)
    return grouped
