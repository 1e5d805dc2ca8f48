"""Reads schedule files (YAML, through ``stem_pg.config.safe_yaml``) and hands plain data to
the core's validation.

The file is Stem's format: a mapping of entry names to entries. YAML syntax
errors, Python tags, duplicate keys and alias bombs are refused here with the
file and line; everything else is the core's job (``parse_entries``), which this
module feeds with the line of each key so its errors name file, line, entry and key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from stem_pg.config.safe_yaml import YamlProblem, read_yaml
from stem_pg.core.errors import ScheduleError
from stem_pg.core.schedule_spec_parse import parse_spec
from stem_pg.core.schedule_specs import Spec, SpecError
from stem_pg.core.schedules import ScheduleEntry, parse_entries

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
        document = read_yaml(text, timestamps=True, merge_keys=True)
    except YamlProblem as problem:
        raise ScheduleError(_problem_line(source, problem)) from None
    return parse_entries(document.data, source=source, locate=document.lines.get)


def _problem_line(source: str, problem: YamlProblem) -> str:
    """``file:line: [entry 'name': ][invalid YAML: ]reason``."""
    inside = f"entry {problem.path[0]!r}: " if problem.path else ""
    reason = problem.reason
    if problem.syntax and not reason.startswith("invalid YAML"):
        reason = f"invalid YAML: {reason}"
    return f"{problem.where(source)}: {inside}{reason}"


def parse_spec_text(text: str, *, timezone: str | None = None) -> Spec:
    """A spec from the command line: ``every:5m``, a cron line, ``cron: 0 9 * * *`` or a
    YAML/JSON mapping like ``{solar: sunset, latitude: 52.5, longitude: 13.4}``."""
    raw: Any = text.strip()
    if raw.startswith("{"):
        try:
            raw = read_yaml(raw, timestamps=True).data
        except YamlProblem as problem:
            raise ScheduleError(f"--spec: {text!r} is not a YAML/JSON mapping: {problem.reason}") from None
    elif match := _ONE_KEY.match(raw):
        raw = {raw.split(":", 1)[0].strip(): match["value"]}
    try:
        return parse_spec(raw, timezone=timezone)
    except SpecError as exc:
        raise ScheduleError(f"--spec: {exc}") from None
