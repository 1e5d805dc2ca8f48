"""Pydantic models as task arguments: checked and stored as JSON at enqueue, rebuilt at the worker.

A parameter whose annotation holds a pydantic ``BaseModel`` (``order: Order``, ``Order | None``,
``list[Order]``) takes a model or its JSON-like dict when enqueued: it is validated then, and the
job stores ``model_dump(mode="json")``; the worker validates that again and passes the model.
pydantic is optional (the ``pydantic`` extra): it is imported only once the application has
imported it itself, since no annotation can name a model before that.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ModelArguments"]


class ModelArguments:
    """The model parameters of one handler, each with the pydantic TypeAdapter of its annotation."""

    def __init__(self, hints: Mapping[str, Any]) -> None:
        #: parameter -> (its annotation, a pydantic TypeAdapter of it)
        self.adapters: dict[str, tuple[Any, Any]] = {}
        if hints:
            from pydantic import TypeAdapter

            self.adapters = {name: (hint, TypeAdapter(hint)) for name, hint in hints.items()}

    @classmethod
    def of(cls, fn: Callable[..., Any]) -> ModelArguments:
        """Read ``fn``'s annotations; none when pydantic is not imported or they do not resolve
        (an annotation only a type checker sees cannot be a model at run time either)."""
        if "pydantic" not in sys.modules:
            return cls({})
        from pydantic import BaseModel

        try:
            hints = typing.get_type_hints(fn)
        except Exception:
            return cls({})
        return cls(
            {name: hint for name, hint in hints.items() if name != "return" and _holds(hint, BaseModel)}
        )

    def __bool__(self) -> bool:
        return bool(self.adapters)

    def dump(self, task: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """``kwargs`` with each model argument validated and turned into JSON-ready data;
        raises BadArgumentsError naming the task, the argument and what is wrong."""
        return {
            name: self._convert(task, name, value, dump=True) if name in self.adapters else value
            for name, value in kwargs.items()
        }

    def load(self, task: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """``kwargs`` with each model argument rebuilt from its stored JSON (BadArgumentsError)."""
        return {
            name: self._convert(task, name, value, dump=False) if name in self.adapters else value
            for name, value in kwargs.items()
        }

    def problem(self, task: str, kwargs: Mapping[str, Any] | None) -> str | None:
        """Why a job's stored arguments do not fit their models, or None."""
        from stem_pg.core.errors import BadArgumentsError

        try:
            self.load(task, kwargs or {})
        except BadArgumentsError as exc:
            return str(exc)
        return None

    def _convert(self, task: str, name: str, value: Any, *, dump: bool) -> Any:
        from pydantic import ValidationError

        from stem_pg.core.errors import BadArgumentsError

        hint, adapter = self.adapters[name]
        try:
            model = adapter.validate_python(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            detail = f" at {where}" if where else ""
            raise BadArgumentsError(
                f"task {task!r}: argument {name!r} is not a valid {_label(hint)}{detail}: {first['msg']}"
            ) from None
        return adapter.dump_python(model, mode="json") if dump else model


def _holds(hint: Any, base: type) -> bool:
    """Whether ``hint`` is ``base`` or a subclass, or a generic/union with one inside."""
    if isinstance(hint, type) and issubclass(hint, base):
        return True
    return any(_holds(arg, base) for arg in typing.get_args(hint))


def _label(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)
