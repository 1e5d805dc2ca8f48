"""``stem shell``: an interactive Python with the application, its tasks and ``Control`` loaded."""

from __future__ import annotations

import importlib
import keyword
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stem_pg.cli import common
from stem_pg.cli.loading import load_app

if TYPE_CHECKING:
    from collections.abc import Callable

    from stem_pg.client.app import Stem


def shell_command(
    app_spec: Annotated[
        str, typer.Option("--app", "-A", help="Your application object, as 'package.module:app'.")
    ],
    plain: Annotated[
        bool, typer.Option("--plain", help="Python's own console even when IPython is installed.")
    ] = False,
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
) -> None:
    """Open an interactive Python with app, its tasks and Control loaded (IPython if installed).

    Each task is bound to the last part of its name when that is a Python identifier
    (email.send as send), as the object @app.task returned; tasks maps every task and
    workflow name to it. The shell refuses, with one line, a database it cannot reach or a
    namespace not migrated. Lines piped on stdin run as a script.
    """
    stem = common.apply_to_app(load_app(app_spec), url=url, namespace_flag=namespace)
    common.require_migrated(stem)
    names = shell_names(stem)
    banner = shell_banner(stem, names)
    if not plain and sys.stdin.isatty():
        try:
            ipython = importlib.import_module("IPython")
        except ImportError:
            pass
        else:
            typer.echo(banner)
            ipython.start_ipython(argv=["--no-banner"], user_ns=names)
            return
    _console(banner, names)


def _console(banner: str, names: dict[str, Any]) -> None:
    import code

    if sys.stdin.isatty():
        code.interact(banner=banner, local=names, exitmsg="")
        return
    # Piped input: run it as one script (a console would echo its prompts into the output).
    typer.echo(banner, err=True)
    exec(compile(sys.stdin.read(), "<stdin>", "exec"), names)


def shell_names(app: Stem) -> dict[str, Any]:
    """The shell's variables: ``app``, ``Control``, ``tasks`` and each task by its short name."""
    from stem_pg.client.control import Control

    tasks = {name: _user_object(fn) for name, fn in _handlers(app)}
    names: dict[str, Any] = {"app": app, "Control": Control, "tasks": tasks}
    short: dict[str, list[str]] = {}
    for name in tasks:
        short.setdefault(name.rpartition(".")[2], []).append(name)
    for alias, full in short.items():
        if len(full) == 1 and alias.isidentifier() and not keyword.iskeyword(alias) and alias not in names:
            names[alias] = tasks[full[0]]
    return names


def shell_banner(app: Stem, names: dict[str, Any]) -> str:
    from stem_pg.core.redaction import redact

    bound = {id(value): alias for alias, value in names.items()}
    lines = [
        f"stem_pg shell: namespace {app.namespace} on {redact(app.url)}",
        "  app      the application",
        "  Control  workers' control plane: Control.of(app.backend).ping()",
        "  tasks    every task by name",
    ]
    for name, value in names["tasks"].items():
        alias = bound.get(id(value))
        lines.append(f"  {alias:<8} {name}" if alias else f"  tasks[{name!r}]")
    return "\n".join(lines)


def _handlers(app: Stem) -> list[tuple[str, Callable[..., Any]]]:
    found = [(d.name, d.fn) for d in app.registry if d.name not in app.workflows]
    return found + [(name, d.fn) for name, d in app.workflows.items()]


def _user_object(fn: Callable[..., Any]) -> Any:
    """What the application's module holds under the handler's name (what ``@app.task``
    returned: the function or a task object); the handler itself if the module does not."""
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    found = getattr(module, getattr(fn, "__name__", ""), None)
    if found is fn or any(getattr(found, attr, None) is fn for attr in ("fn", "func", "__wrapped__")):
        return found
    return fn
