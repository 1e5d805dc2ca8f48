"""The application of the namespace and URL tests: like a user's module, it names its own
database and namespace in code (``Stem(NSAPP_URL, namespace=NSAPP_NAMESPACE)``), which the
``--url``/``--namespace`` flags and the STEM_* variables must win over."""

from __future__ import annotations

import os
from typing import Any

from stem_pg import Stem

app = Stem(os.environ.get("NSAPP_URL") or None, namespace=os.environ.get("NSAPP_NAMESPACE") or None)


@app.task(name="ns.echo")
def echo(x: int = 0) -> int:
    return x


@app.workflow(name="ns.flow")
async def flow(ctx: Any, x: int = 0) -> int:
    return x
