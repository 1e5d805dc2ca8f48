"""Views that enqueue inside ``transaction.atomic()``: with ``?fail=1`` the block rolls back."""

from __future__ import annotations

from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse

from stem_pg.contrib.django import get_app
from tests.django_project.shop.tasks import welcome


class Rejected(Exception):
    pass


def place_order(request: HttpRequest) -> JsonResponse:
    """A stem_pg task enqueued on Django's connection: it exists only if the block commits."""
    order = int(request.GET.get("order", "1"))
    try:
        with transaction.atomic():
            handle = get_app().enqueue("shop.receipt", {"order": order}, connection=connection)
            if request.GET.get("fail"):
                raise Rejected
    except Rejected:
        return JsonResponse({"task_id": handle.id, "committed": False}, status=409)
    return JsonResponse({"task_id": handle.id, "committed": True})


def sign_up(request: HttpRequest) -> JsonResponse:
    """A Django task enqueued through the tasks backend inside the same kind of block."""
    user = request.GET.get("user", "ada")
    try:
        with transaction.atomic():
            result = welcome.enqueue(user)
            if request.GET.get("fail"):
                raise Rejected
    except Rejected:
        return JsonResponse({"result_id": result.id, "committed": False}, status=409)
    return JsonResponse({"result_id": result.id, "committed": True})
