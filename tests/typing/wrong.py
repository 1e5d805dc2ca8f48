"""Calls that must NOT type-check; each error line says so in a trailing comment ``E: <message>``
with a part of mypy's message (tests/unit/test_typing.py)."""

from __future__ import annotations

from stem_pg import Stem, TaskContext

app = Stem("postgresql://localhost/x", namespace="typing")


@app.task(name="email.send")
def send_email(to: str, subject: str) -> str:
    return "sent"


@app.task
async def report(ctx: TaskContext, day: str) -> int:
    return 42


@app.workflow
async def flow(ctx: object, order_id: int) -> str:
    return ""


def wrong() -> None:
    send_email.enqueue(to="a@example.com")  # E: Missing positional argument "subject" in call to "enqueue"
    send_email.enqueue(to="a@example.com", subjet="hi")  # E: Unexpected keyword argument "subjet"
    send_email.delay(1, "hi")  # E: Argument 1 to "delay" of "Task" has incompatible type "int"
    send_email.options(queue="mail").enqueue("a", "b", "c")  # E: Too many arguments for "enqueue"
    send_email.options(countdown="soon")  # E: Argument "countdown" to "options" of "Task"
    count: int = send_email.enqueue("a", "b").get()  # E: Incompatible types in assignment
    report.enqueue(ctx=None, day="x")  # E: Unexpected keyword argument "ctx"
    report.enqueue(day=1)  # E: Argument "day" to "enqueue" of "Task" has incompatible type "int"
    flow.start(order_id="7")  # E: Argument "order_id" to "start" of "Workflow" has incompatible type "str"
    text: int = flow.start(order_id=7).get()  # E: Incompatible types in assignment
    send_email("a")  # E: Missing positional argument "subject"
    print(count, text)
