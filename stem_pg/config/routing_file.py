"""Reads routing YAML safely, remembering where each key sits for error messages.

The file is composed into YAML nodes and converted by hand to plain data: no
tag beyond plain scalars, lists and mappings is ever constructed, so a routing
file can never instantiate Python objects. Validation is the pure core's job
(``RoutingConfig.from_mapping``); this module only supplies the line numbers.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import yaml

from stem_pg.core.errors import RoutingConfigError
from stem_pg.core.routing import KeyPath, RoutingConfig

#: The environment variable naming the routing file; unset means legacy routing.
ENV_VAR = "STEM_ROUTING_CONFIG"

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_CORE + name for name in ("str", "int", "float", "bool", "null"))
#: Aliases are expanded, so cap the output against "billion laughs" documents.
_MAX_NODES = 100_000


def load_routing(path: str | os.PathLike[str] | None) -> RoutingConfig:
    """The routing config for ``path`` (the value of STEM_ROUTING_CONFIG).

    None or an empty string means no file: the legacy single-queue config.
    Raises RoutingConfigError if the file is missing, unreadable or invalid.
    """
    if path is None or os.fspath(path) == "":
        return RoutingConfig.legacy()
    return load_routing_file(path)


def load_routing_file(path: str | os.PathLike[str]) -> RoutingConfig:
    """Read and validate one routing file; errors name the file and line."""
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RoutingConfigError(f"{source}: routing file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RoutingConfigError(f"{source}: cannot read routing file: {exc}") from None
    return load_routing_yaml(text, source=source)


def load_routing_yaml(text: str, *, source: str | None = None) -> RoutingConfig:
    """Parse and validate routing YAML; an empty document means legacy routing.

    Raises RoutingConfigError (never a yaml exception) naming ``source`` (or
    "<string>"), the line and the key.
    """
    name = source or "<string>"
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(name, exc) from None
    except yaml.YAMLError as exc:
        raise RoutingConfigError(f"{name}: invalid YAML: {exc}") from None
    except RecursionError:  # both PyYAML and the converter recurse per level
        raise RoutingConfigError(f"{name}: nesting is too deep") from None
    if root is None:
        return dataclasses.replace(RoutingConfig.legacy(), source=source)
    converter = _Converter(name)
    try:
        data = converter.convert(root, ())
    except RecursionError:
        raise RoutingConfigError(f"{name}: nesting is too deep") from None
    return RoutingConfig.from_mapping(data, source=source, locate=converter.lines.get)


def _syntax_error(name: str, exc: yaml.MarkedYAMLError) -> RoutingConfigError:
    mark = exc.problem_mark or exc.context_mark
    where = f"{name}:{mark.line + 1}" if mark is not None else name
    problem = ": ".join(part for part in (exc.context, exc.problem) if part)
    return RoutingConfigError(f"{where}: invalid YAML: {problem or exc}")


class _Converter:
    """Turns a node tree into dicts, lists and scalars, recording key lines."""

    def __init__(self, name: str) -> None:
        self.name = name
        #: 1-based line of each key path (a mapping key's own line).
        self.lines: dict[KeyPath, int] = {}
        self._active: set[int] = set()
        self._count = 0
        self._scalars = yaml.constructor.SafeConstructor()

    def convert(self, node: yaml.Node, path: KeyPath) -> object:
        self.lines.setdefault(path, node.start_mark.line + 1)
        self._count += 1
        if self._count > _MAX_NODES:
            raise self._error(node, f"more than {_MAX_NODES} values after expanding aliases")
        if id(node) in self._active:  # an alias pointing into its own anchor
            raise self._error(node, "recursive alias")
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                self._require_tag(node, _CORE + "seq")
                return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
            return self._scalar(node)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, object]:
        self._require_tag(node, _CORE + "map")
        result: dict[str, object] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node)
            if key in result:
                first = self.lines[(*path, key)]
                raise self._error(key_node, f"duplicate key {key!r} (first at line {first})")
            self.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = self.convert(value_node, (*path, key))
        return result

    def _key(self, node: yaml.Node) -> str:
        if node.tag == _CORE + "merge":
            raise self._error(node, "merge keys ('<<') are not supported; repeat the keys")
        if not isinstance(node, yaml.ScalarNode):
            raise self._error(node, "a key must be a plain name, not a list or mapping")
        key = self._scalar(node)
        if not isinstance(key, str):
            reason = f"key {node.value!r} is read as {type(key).__name__}; quote it"
            raise self._error(node, reason)
        return key

    def _scalar(self, node: yaml.Node) -> object:
        if node.tag == _CORE + "timestamp":  # a date is just text to routing
            return str(node.value)
        self._require_tag(node, *_SCALAR_TAGS)
        return self._scalars.construct_object(node, deep=True)

    def _require_tag(self, node: yaml.Node, *allowed: str) -> None:
        if node.tag not in allowed:
            shown = node.tag.replace(_CORE, "!!")
            reason = f"unsupported YAML tag {shown!r}: only plain data is read (safe loading)"
            raise self._error(node, reason)

    def _error(self, node: yaml.Node, reason: str) -> RoutingConfigError:
        return RoutingConfigError(f"{self.name}:{node.start_mark.line + 1}: {reason}")
