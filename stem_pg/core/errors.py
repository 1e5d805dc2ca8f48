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


class TaskCancelled(StemError):
    """``result.get()`` of a task that was cancelled (revoked or expired)."""


class ScheduleError(ConfigError):
    """A schedule entry or spec is invalid; the message names the file, entry and key."""


class ScheduleConflict(StemError):
    """A schedule changed since it was read (optimistic versioning): re-read and retry."""


class LockNotAcquired(StemError):
    """``app.lock(...)`` could not take the lock: someone else holds it."""
