"""Where the dashboard's live feed LISTENs: behind a transaction pooler, on the direct URL
(``--direct-url`` / STEM_DIRECT_URL), or nowhere (pages poll): a pooled session would take
the LISTEN and never deliver a notification to it."""

from __future__ import annotations

import pytest

from stem_pg.client.backend import Backend
from stem_pg.dashboard.live import Feeds

PLAIN = "postgresql://stem@db:5432/app"
POOLED = "postgresql://stem@pgbouncer:6432/app?stem_pooler=transaction"


@pytest.mark.parametrize(
    ("url", "direct", "listens_on"),
    [(PLAIN, None, PLAIN), (POOLED, None, None), (POOLED, PLAIN, PLAIN), (PLAIN, PLAIN, PLAIN)],
)
def test_the_feed_listens_on_the_direct_url_behind_a_pooler(
    url: str, direct: str | None, listens_on: str | None
) -> None:
    assert Backend.listening_url(url, direct) == listens_on


def test_with_nowhere_to_listen_a_feed_is_not_started_and_pages_poll() -> None:
    feeds = Feeds(None)
    feed = feeds.of("stem")  # outside an event loop: would raise if it started a listener
    assert not feed.listening
    assert feeds.version_of("stem") is None  # no version: every snapshot is read afresh
