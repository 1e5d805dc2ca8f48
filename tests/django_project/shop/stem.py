"""The project's own stem_pg application (STEM_PG["app"]), on Django's database."""

from __future__ import annotations

from stem_pg import Stem
from stem_pg.contrib.django import database_url

app = Stem(database_url(), namespace="shop")


@app.task(name="shop.receipt")
def receipt(order: int) -> str:
    return f"receipt for order {order}"
