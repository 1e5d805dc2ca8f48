"""Reads routing YAML safely, remembering where each key sits for error messages.

The file is read by ``stem_pg.config.safe_yaml`` (plain data only, alias
expansion and nesting capped). Validation is the pure core's job
(``RoutingConfig.from_mapping``); this module only supplies the line numbers.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from stem_pg.core.errors import RoutingConfigError
from stem_pg.core.routing import RoutingConfig

#: The environment variable naming the routing file; unset means legacy routing.
ENV_VAR = "STEM_ROUTING_CONFIG"


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
    from stem_pg.config.safe_yaml import YamlProblem, read_yaml  # PyYAML: only with a routing file

    name = source or "<string>"
    try:
        document = read_yaml(text)
    except YamlProblem as problem:
        raise RoutingConfigError(f"{problem.where(name)}: {problem.reason}") from None
    if document.data is None:
        return dataclasses.replace(RoutingConfig.legacy(), source=source)
    return RoutingConfig.from_mapping(document.data, source=source, locate=document.lines.get)
