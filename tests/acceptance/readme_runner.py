"""Runs README blocks in a scratch project: files, shell blocks, one Python session per section.

The conventions are documented in tests/acceptance/test_readme.py.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import psycopg

from tests.acceptance.readme_blocks import Block

BLOCK_TIMEOUT = 90.0
# Bash: `set -euo pipefail` (given on the command line), then the block; on success the exported
# variables are saved so the section's next blocks (and its Python session) see them, as in one shell.
SHELL_WRAPPER = 'source "$1"\nenv -0 > "$2"\n'
# The Python session: each block is compiled with top-level await allowed (as `python -m asyncio`
# does) and run in one namespace and one event loop; "ok"/"error" lines go to the saved stdout.
PYTHON_DRIVER = r"""
import ast, asyncio, inspect, os, sys, traceback
proto = os.fdopen(os.dup(1), "w", buffering=1)
log = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
os.dup2(log, 1); os.dup2(log, 2)
sys.stdout.reconfigure(line_buffering=True); sys.stderr.reconfigure(line_buffering=True)
sys.path.insert(0, os.getcwd())
loop = asyncio.new_event_loop(); asyncio.set_event_loop(loop)
scope = {"__name__": "__main__"}
for request in sys.stdin:
    line, path = request.split(" ", 1)
    source = "\n" * int(line) + open(path.strip(), encoding="utf-8").read()
    print(f"--- README.md:{line}", flush=True)
    try:
        code = compile(source, sys.argv[2], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        outcome = eval(code, scope)
        if inspect.iscoroutine(outcome):
            loop.run_until_complete(outcome)
    except BaseException:
        traceback.print_exc()
        proto.write("error\n")
    else:
        proto.write("ok\n")
sys.stdout.flush(); sys.stderr.flush()
os._exit(0)
"""


class BlockFailed(AssertionError):
    pass


class Project:
    """A scratch project directory and the database its blocks talk to."""

    def __init__(self, root: Path, database_url: str, readme: Path, repo: Path) -> None:
        self.root = root
        self.database_url = database_url
        self.readme = readme
        self.logs = root.parent / f"{root.name}-logs"
        self.logs.mkdir(exist_ok=True)
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join([str(root), str(repo)]),
            "STEM_BROKER_URL": database_url,
        }
        for variable in [k for k in self.env if k.startswith("STEM_") and k != "STEM_BROKER_URL"]:
            if variable != "STEM_TEST_DATABASE_URL":
                del self.env[variable]
        self.base_env = dict(self.env)
        self.background: list[tuple[Block, subprocess.Popen[bytes], Path]] = []
        self.session: subprocess.Popen[str] | None = None
        self.session_log = self.logs / "python.log"
        self.counter = 0

    # -- one section -------------------------------------------------------------------

    def run_section(self, blocks: list[Block]) -> None:
        self.env = dict(self.base_env)
        try:
            for block in blocks:
                self.run_block(block)
            self.check_background()
        finally:
            self.end_section()

    def run_block(self, block: Block) -> None:
        if block.marker == "skip":
            if not block.reason:
                raise BlockFailed(f"{block.where}: a skip marker must say why: <!-- readme: skip (why) -->")
            return
        path = block.path
        if path and block.lang in ("python", "yaml", "yml", "json", "toml"):
            target = self.root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.body, encoding="utf-8")
            return
        runner = {"bash": self.bash, "sh": self.bash, "python": self.python, "sql": self.sql}
        runner.get(block.lang, self.not_run)(block)

    def not_run(self, block: Block) -> None:
        """Output shown in a README (``text``): lines after a ``$ `` command must be what it prints."""
        if block.lang == "json":  # output too (a log line): it must be JSON, whole or line by line
            try:
                json.loads(block.body)
            except ValueError:
                try:
                    [json.loads(line) for line in block.body.splitlines() if line.strip()]
                except ValueError as exc:
                    self.fail(block, f"not JSON: {exc}")
            return
        if block.lang != "text" or not block.body.startswith("$ "):
            if block.lang not in ("text", ""):
                raise BlockFailed(f"{block.where}: no rule runs a {block.lang!r} block (see test_readme.py)")
            return
        command, *expected = block.body.rstrip("\n").split("\n")
        done = subprocess.run(
            ["bash", "-c", command[2:]],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )
        printed = (done.stdout + done.stderr).rstrip("\n").split("\n")
        if printed != expected:
            self.fail(block, "printed:\n" + "\n".join(printed))

    # -- block kinds -------------------------------------------------------------------

    def script(self, block: Block, suffix: str) -> Path:
        self.counter += 1
        path = self.logs / f"block-{block.line}{suffix}"
        path.write_text(block.body, encoding="utf-8")
        return path

    def bash(self, block: Block) -> None:
        script = self.script(block, ".sh")
        if block.marker == "background":
            log = self.logs / f"block-{block.line}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    ["bash", "-euo", "pipefail", str(script)],
                    cwd=self.root,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.background.append((block, process, log))
            return
        saved = self.logs / f"block-{block.line}.env"
        wrapper = self.logs / "wrapper.sh"
        wrapper.write_text(SHELL_WRAPPER, encoding="utf-8")
        log = self.logs / f"block-{block.line}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["bash", "-euo", "pipefail", str(wrapper), str(script), str(saved)],
                cwd=self.root,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                process.wait(timeout=BLOCK_TIMEOUT)
            except subprocess.TimeoutExpired:
                _stop_group(process)
                self.fail(block, f"still running after {BLOCK_TIMEOUT:.0f} s:\n{_tail(log)}")
        if process.returncode != 0:
            self.fail(block, f"exit status {process.returncode}\n{_tail(log)}")
        self.env = _read_env(saved)

    def sql(self, block: Block) -> None:
        try:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                conn.execute(block.body.encode())
        except psycopg.Error as exc:
            self.fail(block, f"{type(exc).__name__}: {exc}")

    def python(self, block: Block) -> None:
        if self.session is None:
            self.session = subprocess.Popen(
                [sys.executable, "-c", PYTHON_DRIVER, str(self.session_log), str(self.readme)],
                cwd=self.root,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        assert self.session.stdin is not None and self.session.stdout is not None
        self.session.stdin.write(f"{block.line} {self.script(block, '.py')}\n")
        self.session.stdin.flush()
        answer = _read_line(self.session.stdout, BLOCK_TIMEOUT)
        if answer != "ok":
            why = "raised" if answer == "error" else f"did not finish in {BLOCK_TIMEOUT:.0f} s"
            self.fail(block, f"{why}; the session's output:\n{_tail(self.session_log)}")

    # -- processes ---------------------------------------------------------------------

    def check_background(self) -> None:
        for block, process, log in self.background:
            if process.poll() not in (None, 0):
                self.fail(block, f"failed (exit status {process.returncode}):\n{_tail(log)}")

    def end_section(self) -> None:
        if self.session is not None:
            assert self.session.stdin is not None
            self.session.stdin.close()
            _stop_session(self.session)
            self.session = None
            self.session_log.rename(self.logs / f"python-{time.monotonic_ns()}.log")
        for _block, process, _log in self.background:
            _stop_group(process)
        self.background = []

    def fail(self, block: Block, details: str) -> Any:
        extra = "".join(f"\n--- background {b.where}:\n{_tail(log)}" for b, _p, log in self.background)
        raise BlockFailed(f"{block.where} failed: {details}{extra}")


def _read_env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in path.read_bytes().split(b"\0"):
        name, sep, value = item.decode().partition("=")
        if sep and not name.startswith(("BASH", "_")) and name not in ("SHLVL", "PWD", "OLDPWD"):
            env[name] = value
    return env


def _read_line(stream: IO[str], timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline().strip() if ready else ""


def _tail(path: Path, limit: int = 6000) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else "(no output)"
    return text[-limit:]


def _stop_session(process: subprocess.Popen[str]) -> None:
    """The session ends once its stdin is closed; one that hangs (a stuck thread) is killed."""
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGINT a background block's process group, as Ctrl-C does; SIGKILL what is left."""
    try:
        os.killpg(process.pid, signal.SIGINT)
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            process.poll()
            os.killpg(process.pid, 0)
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)
