"""The service's writer engine leaves checkpoints to a thread the app runs while it serves."""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi.testclient import TestClient

from mailroom.config import load_settings
from mailroom.outbox import database
from mailroom.web.app import create_app


def _checkpoint_threads() -> int:
    return sum(thread.name == "mailroom-wal-checkpoints" for thread in threading.enumerate())


def test_the_app_checkpoints_its_log_while_it_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    app = create_app(load_settings(environ={"DATABASE_URL": url}))
    database.upgrade(app.state.engine)
    with app.state.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 0
    assert _checkpoint_threads() == 0
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert _checkpoint_threads() == 1
    assert _checkpoint_threads() == 0
    app.state.engine.dispose()
