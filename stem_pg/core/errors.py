"""Exception types shared by every layer, so callers can catch one family."""

from __future__ import annotations


class StemError(Exception):
    """Base class of every error stem_pg raises on purpose."""


class ConfigError(StemError, ValueError):
    """A configuration value (environment variable, flag, file) is invalid."""


class NamespaceError(ConfigError):
    """A namespace name cannot be used as a Postgres schema."""


class RoutingConfigError(ConfigError):
    """A routing file or routing object is invalid.

    The message names the file, the line and the key whenever they are known.
    """


class TaskError(StemError):
    """A task definition or an enqueue request is invalid."""


class UnknownTaskError(TaskError, KeyError):
    """A task name is not registered with the application."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DatabaseUnavailable(StemError):
    """The database cannot be reached; the message names the host and port, never a password."""


class BadArgumentsError(TaskError, TypeError):
    """A task's arguments do not fit its handler's signature, or ``@app.task`` got an unknown
    option; the message names the task and the argument (and a close match, if any)."""


class UnknownTaskWarning(UserWarning):
    """An enqueue names a task this application does not register, close to one it does
    (a likely typo). A warning, not an error: producers may enqueue tasks defined elsewhere."""


class NotMigratedError(StemError):
    """The namespace schema is missing or older than this version of stem_pg; the message
    says which namespace and the command that migrates it."""

    def __init__(self, namespace: str) -> None:
        super().__init__(
            f"namespace {namespace!r} is not migrated (or is at an older revision);"
            f" run: stem migrate --namespace {namespace}"
        )
        self.namespace = namespace


class TaskFailed(StemError):
    """``result.get()`` of a task that failed; carries the remote error and traceback."""

    def __init__(self, task_id: str, error: str | None, traceback: str | None = None) -> None:
        super().__init__(f"task {task_id} failed: {error}")
        self.task_id = task_id
        self.error = error
        self.traceback = traceback


class ResultTimeout(StemError, TimeoutError):
    """``result.get(timeout=...)`` ran out before the task finished; names the task and its state."""

    def __init__(self, task_id: str, timeout: float, state: str | None, detail: str = "") -> None:
        seen = f"state: {state}" if state else "state unknown"
        super().__init__(f"task {task_id} did not finish within {timeout:g}s ({seen}){detail}")
        self.task_id = task_id
        self.state = state


class TaskCancelled(StemError):
    """``result.get()`` of a task that was cancelled (revoked or expired)."""


class ScheduleError(ConfigError):
    """A schedule entry or spec is invalid; the message names the file, entry and key."""


class ScheduleConflict(StemError):
    """A schedule changed since it was read (optimistic versioning): re-read and retry."""


class LockNotAcquired(StemError):
    """``app.lock(...)`` could not take the lock: someone else holds it."""
