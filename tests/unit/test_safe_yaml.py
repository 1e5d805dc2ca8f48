"""One safe YAML loader for every YAML stem_pg reads: plain data only, alias bombs and deep
nesting refused with one line naming the file, and no other module parses YAML itself."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest

import stem_pg
from stem_pg.config.routing_file import load_routing_yaml
from stem_pg.config.safe_yaml import MAX_NODES, YamlProblem, read_yaml
from stem_pg.config.schedule_file import load_schedule_yaml, parse_spec_text
from stem_pg.core.errors import RoutingConfigError, ScheduleError

PACKAGE = Path(stem_pg.__file__).parent

#: Thirteen lines: nine levels of nine aliases each, 9**9 (387 million) strings once expanded.
ALIAS_BOMB = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
bomb:
  task: t
  spec: every:1m
  kwargs: {x: *i}
"""

#: Loads ``argv[2]`` with the loader ``argv[1]`` names in a process limited to 1 GB of
#: address space, printing the refusal: the bomb must neither fill the memory nor take long.
LOAD_BOUNDED = textwrap.dedent(
    """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    from stem_pg.config.routing_file import load_routing_file
    from stem_pg.config.schedule_file import load_schedule_file
    from stem_pg.core.errors import StemError
    load = {"schedule": load_schedule_file, "routing": load_routing_file}[sys.argv[1]]
    try:
        load(sys.argv[2])
    except StemError as exc:
        print(exc)
    else:
        print("accepted")
    """
)


@pytest.mark.parametrize("loader", ["schedule", "routing"])
def test_an_alias_bomb_is_refused_in_one_line_naming_the_file(loader: str, tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB.splitlines()) == 13
    result = subprocess.run(
        [sys.executable, "-c", LOAD_BOUNDED, loader, str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and result.stderr == "", result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout[-2000:]
    assert re.fullmatch(
        rf"{re.escape(str(path))}:\d+: (entry '\w+': invalid YAML: )?more than {MAX_NODES} values after"
        r" expanding aliases",
        lines[0],
    ), lines[0]


def test_the_spec_option_uses_the_safe_loader_too() -> None:
    with pytest.raises(ScheduleError, match=r"^--spec: .* is not a YAML/JSON mapping: unsupported YAML tag"):
        parse_spec_text("{every: !!python/object/apply:os.system ['true']}")
    levels = "abcdefghi"
    parts = [f"a: &a [{', '.join(['lol'] * 9)}]"]
    parts += [f"{name}: &{name} [{', '.join(['*' + below] * 9)}]" for below, name in pairwise(levels)]
    with pytest.raises(ScheduleError, match=f"more than {MAX_NODES} values after expanding aliases$"):
        parse_spec_text("{" + ", ".join(parts) + ", every: *i}")


def test_deep_nesting_is_refused_with_the_line() -> None:
    with pytest.raises(YamlProblem, match=r"^nested more than 100 levels deep$") as caught:
        read_yaml("x:\n  y: " + "[" * 150 + "]" * 150 + "\n")
    assert caught.value.line == 2
    with pytest.raises(ScheduleError, match=r"^s\.yaml: invalid YAML: nesting is too deep"):
        load_schedule_yaml("x: " + "[" * 5000 + "]" * 5000 + "\n", source="s.yaml")
    with pytest.raises(ScheduleError, match=r"^s\.yaml:3: entry 'x': invalid YAML: nested more than 100"):
        load_schedule_yaml("x:\n  task: t\n  kwargs: {a: " + "[" * 120 + "]" * 120 + "}\n", source="s.yaml")


def test_schedule_files_keep_merge_keys_and_timestamps() -> None:
    text = """\
first: &base
  task: t
  spec: every:1m
  kwargs: {a: 1}
second:
  <<: *base
  spec: {clocked: 2030-01-01T00:00:00Z}
"""
    first, second = load_schedule_yaml(text)
    assert (second.task, dict(second.kwargs)) == ("t", {"a": 1})
    assert second.spec.to_json()["clocked"] == datetime(2030, 1, 1, tzinfo=UTC).isoformat()
    assert first.spec.to_json() == {"kind": "interval", "every": 60.0}
    with pytest.raises(RoutingConfigError, match="merge keys"):
        load_routing_yaml("base: &b {exchange: x}\nqueues:\n  p:\n    <<: *b\n")


def test_no_module_but_the_safe_loader_parses_yaml() -> None:
    """``yaml.safe_load``, ``yaml.load`` or ``yaml.compose`` anywhere else would bypass the caps."""
    parsing = re.compile(r"\byaml\.(?:safe_load|load|full_load|unsafe_load|compose|parse)\w*\(")
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "safe_yaml.py" and parsing.search(path.read_text())
    ]
    assert offenders == []


def test_a_merge_of_itself_is_a_recursive_alias() -> None:
    with pytest.raises(ScheduleError, match=r"^s\.yaml:1: entry 'a': invalid YAML: recursive alias$"):
        load_schedule_yaml("a: &a\n  <<: *a\n  task: t\n", source="s.yaml")
