"""docker-compose.yml cannot run here (no Docker engine), so check its structure and that
every stem command it runs exists in the CLI with the options it passes."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import typer.main
import yaml

from stem_pg.cli import app

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _stem_argv(service: dict[str, Any]) -> list[str]:
    entrypoint = service.get("entrypoint")
    if entrypoint and entrypoint[:2] == ["sh", "-c"]:
        argv = shlex.split(entrypoint[2].replace("$$", "$"))
        assert argv[0] == "exec"
        argv = argv[1:]
    else:
        argv = ["stem", *service["command"]]
    assert argv[0] == "stem"
    return argv[1:]


def _resolve(argv: list[str]) -> tuple[Any, list[str]]:
    command: Any = typer.main.get_command(app)
    while hasattr(command, "commands") and argv and argv[0] in command.commands:
        command, argv = command.commands[argv[0]], argv[1:]
    return command, argv


def test_services_and_healthcheck() -> None:
    services = _compose()["services"]
    assert {"postgres", "migrate", "worker", "beat", "dashboard"} <= set(services)
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    for name in ("worker", "beat", "dashboard"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("migrate", "worker", "beat", "dashboard"):
        assert services[name]["environment"]["STEM_BROKER_URL"].startswith("postgresql://")


def test_commands_exist_in_the_cli() -> None:
    services = _compose()["services"]
    # The dashboard listens beyond the container's loopback: it must be given credentials.
    assert "STEM_DASHBOARD_TOKEN" in services["dashboard"]["environment"]
    assert all(port.startswith("127.0.0.1:") for port in services["dashboard"]["ports"])
    for name in ("migrate", "worker", "beat", "dashboard"):
        command, rest = _resolve(_stem_argv(services[name]))
        assert not hasattr(command, "commands"), f"{name}: {rest} is not a stem command"
        known = {opt for param in command.params for opt in getattr(param, "opts", [])}
        for token in rest:
            if token.startswith("--"):
                assert token in known, f"{name}: unknown option {token}"
        ctx = command.make_context("stem", [t.replace("$STEM_APP", "stem_pg.dev.demo_app:app") for t in rest])
        assert ctx.params is not None
