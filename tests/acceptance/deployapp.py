"""Two releases of one application for ``stem tasks check``: ``old`` and ``new``.

The new release renames ``deploy.send_mail`` to ``deploy.send_email``, gives
``deploy.resize`` a required ``height``, and its workflow ``deploy.onboard`` a required
``plan``; ``deploy.ping`` is the same in both.
"""

from __future__ import annotations

from typing import Any

from stem_pg.client.app import Stem

old = Stem()
new = Stem()


@old.task(name="deploy.ping")
@new.task(name="deploy.ping")
def ping() -> str:
    return "pong"


@old.task(name="deploy.send_mail")
def send_mail(to: str) -> str:
    return to


@new.task(name="deploy.send_email")
def send_email(to: str) -> str:
    return to


@old.task(name="deploy.resize")
def resize_old(path: str, width: int) -> str:
    return path


@new.task(name="deploy.resize")
def resize_new(path: str, width: int, height: int) -> str:
    return path


@old.workflow(name="deploy.onboard")
async def onboard_old(ctx: Any, user: str) -> str:
    return user


@new.workflow(name="deploy.onboard")
async def onboard_new(ctx: Any, user: str, plan: str) -> str:
    return user
