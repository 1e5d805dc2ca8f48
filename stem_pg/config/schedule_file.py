"""Reads schedule files (YAML, safe loader only) and hands plain data to the core's validation.

The file is Stem's format: a mapping of entry names to entries. YAML syntax
errors, Python tags and duplicate keys are refused here with the file and line;
everything else is the core's job (``parse_entries``), which this module feeds
with the line of each key so its errors name file, line, entry and key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from stem_pg.core.errors import ScheduleError
from stem_pg.core.schedule_spec_parse import parse_spec
from stem_pg.core.schedule_specs import Spec, SpecError
from stem_pg.core.schedules import KeyPath, ScheduleEntry, parse_entries

_ONE_KEY = re.compile(r"^\s*(every|cron|clocked|solar)\s*:\s+(?P<value>.+?)\s*$")


def load_schedule_file(path: str | os.PathLike[str]) -> list[ScheduleEntry]:
    """Every entry of the file at ``path``; ScheduleError naming file, line, entry and key."""
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScheduleError(f"{source}: schedule file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScheduleError(f"{source}: cannot read schedule file: {exc}") from None
    return load_schedule_yaml(text, source=source)


def load_schedule_yaml(text: str, *, source: str = "<string>") -> list[ScheduleEntry]:
    """Parse and validate schedule YAML; an empty document has no entries."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = ": ".join(part for part in (exc.context, exc.problem) if part)
        raise ScheduleError(f"{where}: invalid YAML: {problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ScheduleError(f"{source}: invalid YAML: {exc}") from None
    lines: dict[KeyPath, int] = {}
    if root is not None:
        _collect_lines(root, (), lines, source)
    return parse_entries(data, source=source, locate=lines.get)


def _collect_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], source: str) -> None:
    """The line of every mapping key (to two levels: entries and their keys); duplicates are errors."""
    if not isinstance(node, yaml.MappingNode) or len(path) > 2:
        return
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        line = key_node.start_mark.line + 1
        if key in seen:
            inside = f"entry {path[0]!r}: " if path else ""
            raise ScheduleError(f"{source}:{line}: {inside}duplicate key {key!r} (first at line {seen[key]})")
        seen[key] = line
        lines[(*path, key)] = line
        _collect_lines(value_node, (*path, key), lines, source)


def parse_spec_text(text: str, *, timezone: str | None = None) -> Spec:
    """A spec from the command line: ``every:5m``, a cron line, ``cron: 0 9 * * *`` or a
    YAML/JSON mapping like ``{solar: sunset, latitude: 52.5, longitude: 13.4}``."""
    raw: Any = text.strip()
    if raw.startswith("{"):
        try:
            raw = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ScheduleError(f"--spec: {text!r} is not a YAML/JSON mapping: {exc}") from None
    elif match := _ONE_KEY.match(raw):
        raw = {raw.split(":", 1)[0].strip(): match["value"]}
    try:
        return parse_spec(raw, timezone=timezone)
    except SpecError as exc:
        raise ScheduleError(f"--spec: {exc}") from None
