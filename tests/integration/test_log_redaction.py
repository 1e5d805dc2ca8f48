"""A worker started in code masks passwords in every log record of its process, its own
warnings about a database it cannot reach and anyone else's (issue 14, item 4)."""

from __future__ import annotations

import logging
import socket

import pytest

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from tests.helpers import running_worker, wait_for

SECRET = "zq9Pl4ntedInCode"


def test_worker_in_code_redacts_log_records(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://stem:{SECRET}@127.0.0.1:{port}/test"
    app = Stem(url, config=StemConfig())
    caplog.set_level(logging.INFO)
    with running_worker(app):
        wait_for(lambda: "cannot connect" in caplog.text, 30, "the worker's connection warning")
        chatty = logging.getLogger("tests.chatty")
        chatty.warning("settings: url=%s", url)
        chatty.warning("connecting with host=h password=%s user=u", SECRET)
        try:
            raise RuntimeError(f"vault said {SECRET}")
        except RuntimeError:
            chatty.exception("lookup failed")
    app.close()
    assert SECRET not in caplog.text
    assert f"settings: url=postgresql://stem:***@127.0.0.1:{port}/test" in caplog.text
    assert "password=*** user=u" in caplog.text
    assert "RuntimeError: vault said ***" in caplog.text
    assert not any(SECRET in record.getMessage() for record in caplog.records)
