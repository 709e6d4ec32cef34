"""The command line as a newcomer meets it: a store it cannot use is one clear
line and exit code 2, with no password shown; a new SQLite store is private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from api.cli import main


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql+psycopg://u:hunter2@127.0.0.1:1/x", "connection"),
        ("nonsense://u:hunter2@x", "no store this service knows"),
        ("sqlite:////no/such/folder/x.db", "unable to open"),
        ("postgresql+psycopg://u@127.0.0.1:1/x?password=hunter2", "connection"),
        ("postgresql+psycopg://u:hun@ter2@127.0.0.1:1/x", "write it as %40"),
        ("postgresql+psycopg://u:hunter2@127.0.0.1:port/x", "not a database URL"),
        ("mysql://u:hunter2@127.0.0.1/x", "no store this service knows"),
        ("postgresql://u:hunter2@127.0.0.1/x", "no store this service knows"),
    ],
)
def test_a_store_it_cannot_use_is_one_clear_line(
    url: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "export", "--database", url]) == 2
    error = capsys.readouterr().err
    assert said in error and "hunter2" not in error and "ter2" not in error
    assert "Traceback" not in error and len(error.strip().splitlines()) == 1


def test_a_new_sqlite_store_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    store = tmp_path / "ledger.db"
    assert main(["audit", "export", "--database", f"sqlite:///{store}"]) == 0
    assert stat.S_IMODE(store.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("option", "value"),
    [("--port", "99999"), ("--port", "0"), ("--port", "http"), ("--workers", "0")],
)
def test_serve_refuses_a_port_or_worker_count_out_of_range(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["serve", option, value])

    assert stopped.value.code == 2
    assert f"argument {option}: must be a whole number from" in capsys.readouterr().err
