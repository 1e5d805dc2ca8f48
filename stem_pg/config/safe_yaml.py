"""The one YAML reader of stem_pg: plain data only, bounded in size and depth, keys located.

Every YAML the project reads (routing files, schedule files, ``--spec`` mappings)
goes through ``read_yaml``. The text is composed into YAML nodes and converted by
hand: no tag beyond plain scalars (and, where asked, timestamps), lists and
mappings is ever constructed, so a file can never instantiate Python objects.
Aliases are expanded while converting, and the expansion is counted: a "billion
laughs" document of nested aliases is refused after MAX_NODES values, in well
under a second, instead of growing to gigabytes. Callers turn a ``YamlProblem``
into their own error (RoutingConfigError, ScheduleError) naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

#: A key's position: mapping keys and list indexes from the document's root.
KeyPath = tuple[str | int, ...]

#: Values (scalars, lists and mappings, aliases counted each time they are used) a document
#: may expand to. Real routing and schedule files hold a few hundred.
MAX_NODES = 100_000
#: Lists and mappings nested in each other (the root is level 0).
MAX_DEPTH = 100

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_CORE + name for name in ("str", "int", "float", "bool", "null"))
_TIMESTAMP = _CORE + "timestamp"
_MERGE = _CORE + "merge"


class YamlProblem(Exception):
    """Why a document was refused; ``line`` is 1-based (None when unknown), ``path`` the key
    inside which it was found, ``syntax`` False for the mistakes of a well-formed document
    (a duplicate key, a key that is not text)."""

    def __init__(self, line: int | None, path: KeyPath, reason: str, *, syntax: bool = True) -> None:
        super().__init__(reason)
        self.line, self.path, self.reason, self.syntax = line, path, reason, syntax

    def where(self, source: str) -> str:
        """``source:line`` (or ``source`` alone when the line is unknown)."""
        return f"{source}:{self.line}" if self.line is not None else source


@dataclass
class YamlDocument:
    """A document's plain data and the 1-based line of each key path."""

    data: object
    lines: dict[KeyPath, int] = field(default_factory=dict)


def read_yaml(text: str, *, timestamps: bool = False, merge_keys: bool = False) -> YamlDocument:
    """Parse one YAML document into plain data (None for an empty document).

    ``timestamps``: unquoted times become datetimes (else they stay text);
    ``merge_keys``: ``<<`` merges mappings (else it is refused). Raises YamlProblem
    for bad syntax, a tag that is not plain data, a duplicate or non-text key, a
    recursive alias, more than MAX_NODES values or more than MAX_DEPTH levels.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = ": ".join(part for part in (exc.context, exc.problem) if part)
        raise YamlProblem(
            None if mark is None else mark.line + 1, (), f"invalid YAML: {problem or exc}"
        ) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(None, (), f"invalid YAML: {exc}") from None
    except RecursionError:  # PyYAML's composer recurses per level
        raise YamlProblem(None, (), f"nesting is too deep (more than {MAX_DEPTH} levels)") from None
    if root is None:
        return YamlDocument(None)
    converter = _Converter(timestamps=timestamps, merge_keys=merge_keys)
    data = converter.convert(root, ())
    return YamlDocument(data, converter.lines)


class _Converter:
    """Turns a node tree into dicts, lists and scalars, recording key lines and counting values."""

    def __init__(self, *, timestamps: bool, merge_keys: bool) -> None:
        self.timestamps = timestamps
        self.merge_keys = merge_keys
        self.lines: dict[KeyPath, int] = {}
        self._active: set[int] = set()
        self._count = 0
        self._scalars = yaml.constructor.SafeConstructor()

    def convert(self, node: yaml.Node, path: KeyPath) -> object:
        self.lines.setdefault(path, node.start_mark.line + 1)
        self._count += 1
        if self._count > MAX_NODES:
            raise self._problem(node, path, f"more than {MAX_NODES} values after expanding aliases")
        if id(node) in self._active:  # an alias pointing into its own anchor
            raise self._problem(node, path, "recursive alias")
        if isinstance(node, yaml.CollectionNode) and len(path) >= MAX_DEPTH:
            raise self._problem(node, path, f"nested more than {MAX_DEPTH} levels deep")
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                self._require_tag(node, path, _CORE + "seq")
                return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
            return self._scalar(node, path)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, object]:
        self._require_tag(node, path, _CORE + "map")
        result: dict[str, object] = {}
        merged: dict[str, object] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self._merge(key_node, value_node, path, merged)
                continue
            key = self._key(key_node, path)
            if key in result:
                first = self.lines[(*path, key)]
                reason = f"duplicate key {key!r} (first at line {first})"
                raise YamlProblem(key_node.start_mark.line + 1, path, reason, syntax=False)
            self.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = self.convert(value_node, (*path, key))
        return {**merged, **result} if merged else result

    def _merge(self, key_node: yaml.Node, value: yaml.Node, path: KeyPath, into: dict[str, object]) -> None:
        """``<<: *base`` or ``<<: [*a, *b]``: keys not given yet, the first mapping winning."""
        if not self.merge_keys:
            raise self._problem(key_node, path, "merge keys ('<<') are not supported; repeat the keys")
        sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise self._problem(source, path, "a merge key ('<<') takes a mapping or a list of mappings")
            converted = self.convert(source, path)  # counted, depth- and cycle-checked
            for key, item in converted.items() if isinstance(converted, dict) else ():
                into.setdefault(key, item)

    def _key(self, node: yaml.Node, path: KeyPath) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self._problem(node, path, "a key must be a plain name, not a list or mapping", syntax=False)
        key = self._scalar(node, path)
        if not isinstance(key, str):
            reason = f"key {node.value!r} is read as {type(key).__name__}; quote it"
            raise self._problem(node, path, reason, syntax=False)
        return key

    def _scalar(self, node: yaml.Node, path: KeyPath) -> object:
        if node.tag == _TIMESTAMP and not self.timestamps:
            return str(node.value)
        self._require_tag(node, path, *_SCALAR_TAGS, *((_TIMESTAMP,) if self.timestamps else ()))
        return self._scalars.construct_object(node, deep=True)

    def _require_tag(self, node: yaml.Node, path: KeyPath, *allowed: str) -> None:
        if node.tag not in allowed:
            shown = node.tag.replace(_CORE, "!!")
            reason = f"unsupported YAML tag {shown!r}: only plain data is read (safe loading)"
            raise self._problem(node, path, reason)

    def _problem(self, node: yaml.Node, path: KeyPath, reason: str, *, syntax: bool = True) -> YamlProblem:
        return YamlProblem(node.start_mark.line + 1, path, reason, syntax=syntax)
