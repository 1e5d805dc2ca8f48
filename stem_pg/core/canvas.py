"""Canvas primitives: signatures, chains, groups and chords (pure data, no I/O).

A chain runs its links one after another and hands each link's return value
to the next as a keyword argument (``result`` unless the link says otherwise);
it stops at the first link that does not succeed. A group runs its members in
parallel; a chord runs a group and then its callback once, with the members'
results in input order (``results``). ``.si()`` signatures take no result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from stem_pg.core.errors import TaskError

#: What ``Signature.set`` accepts: the per-job options of ``app.enqueue``.
SIGNATURE_OPTIONS = frozenset(
    {"task_id", "countdown", "eta", "expires", "priority", "queue", "headers", "result_arg"}
)
CHAIN_RESULT_ARG = "result"
CHORD_RESULT_ARG = "results"


@dataclass(frozen=True)
class Signature:
    """A task call to make later: task name, keyword arguments and enqueue options."""

    task: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Take no result from the previous link or the chord header (``task.si(...)``).
    immutable: bool = False
    #: The application that made it (``task.s(...)``), so ``.delay()`` knows where to go.
    app: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task:
            raise TaskError(f"a signature needs a task name, got {self.task!r}")
        if not isinstance(self.kwargs, Mapping):
            raise TaskError(f"{self.task}: signature kwargs must be a mapping, got {self.kwargs!r}")
        unknown = set(self.options) - SIGNATURE_OPTIONS
        if unknown:
            raise TaskError(
                f"{self.task}: unknown signature option(s) {sorted(unknown)};"
                f" allowed: {sorted(SIGNATURE_OPTIONS)}"
            )
        result_arg = self.options.get("result_arg")
        if result_arg is not None and (not isinstance(result_arg, str) or not result_arg.isidentifier()):
            raise TaskError(f"{self.task}: result_arg must be a parameter name, got {result_arg!r}")

    def set(self, **options: Any) -> Signature:
        """A copy with more enqueue options (``queue=``, ``priority=``, ``result_arg=`` ...)."""
        return replace(self, options={**self.options, **options})

    def result_arg(self, default: str) -> str | None:
        """The keyword the previous result arrives under, or None for immutable signatures."""
        if self.immutable:
            return None
        return str(self.options.get("result_arg") or default)

    def delay(self) -> Any:
        """Enqueue this call alone; returns its TaskResult."""
        options = {k: v for k, v in self.options.items() if k != "result_arg"}
        return _app_of([self]).enqueue(self.task, self.kwargs, **options)


@dataclass(frozen=True)
class Chain:
    """Links run one after another; each success hands its value to the next."""

    links: tuple[Signature, ...]

    def delay(self, *, connection: Any = None) -> Any:
        return _app_of(self.links).apply(self, connection=connection)


@dataclass(frozen=True)
class Group:
    """Members run in parallel; the group's result lists theirs in input order."""

    members: tuple[Signature, ...]

    def delay(self, *, connection: Any = None) -> Any:
        return _app_of(self.members).apply(self, connection=connection)


@dataclass(frozen=True)
class Chord:
    """A group, then ``callback`` once with every member's result (in input order)."""

    header: Group
    callback: Signature

    def delay(self, *, connection: Any = None) -> Any:
        return _app_of([*self.header.members, self.callback]).apply(self, connection=connection)


Canvas = Chain | Group | Chord


def chain(*links: Signature | Iterable[Signature]) -> Chain:
    """``chain(a.s(...), b.s(), c.s())``: run a, then b with a's result, then c with b's."""
    flat = _signatures("chain", links)
    return Chain(flat)


def group(*members: Signature | Iterable[Signature]) -> Group:
    """``group(a.s(x=1), a.s(x=2))`` or ``group([...])``: run every member in parallel."""
    return Group(_signatures("group", members))


def chord(header: Group | Iterable[Signature], callback: Signature) -> Chord:
    """``chord(group, callback)``: the callback runs exactly once, after every member succeeded."""
    members = header if isinstance(header, Group) else group(header)
    if not isinstance(callback, Signature):
        raise TaskError(f"chord callback must be a signature (task.s(...)), got {callback!r}")
    return Chord(members, callback)


def _signatures(kind: str, items: tuple[Signature | Iterable[Signature], ...]) -> tuple[Signature, ...]:
    flat: list[Signature] = []
    for item in items:
        if isinstance(item, Signature):
            flat.append(item)
        elif isinstance(item, Iterable) and not isinstance(item, str | bytes | Mapping):
            flat.extend(item)
        else:
            raise TaskError(f"{kind}: expected signatures (task.s(...)), got {item!r}")
    for sig in flat:
        if not isinstance(sig, Signature):
            raise TaskError(f"{kind}: expected signatures (task.s(...)), got {sig!r}")
    if not flat:
        raise TaskError(f"{kind} needs at least one signature")
    return tuple(flat)


def _app_of(signatures: Iterable[Signature]) -> Any:
    for sig in signatures:
        if sig.app is not None:
            return sig.app
    raise TaskError(
        "these signatures belong to no application: make them with task.s(...) or call app.apply()"
    )
