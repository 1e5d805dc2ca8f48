"""Without prometheus_client (the ``metrics`` extra), asking for metrics fails with one line
naming the extra to install, before anything connects."""

from __future__ import annotations

import sys

import pytest

from stem_pg.cli import main


@pytest.mark.parametrize(
    "args",
    [
        ["worker", "run", "--app", "no.such:app", "--metrics-port", "9100"],
        ["beat", "--app", "no.such:app", "--metrics-port", "9100"],
        ["metrics", "serve"],
    ],
)
def test_metrics_without_prometheus_client_fail_in_one_line(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails, as when not installed
    monkeypatch.setattr(sys, "argv", ["stem", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "needs prometheus_client" in err and "pip install 'stem_pg[metrics]'" in err
