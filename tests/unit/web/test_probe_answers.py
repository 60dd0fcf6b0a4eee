"""``/readyz`` and ``/metrics`` answer without a login: their 503 names the kind of problem in
a fixed sentence, never the database's user, host, port or name (those go to the log)."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from mailroom.config import load_settings
from mailroom.web.app import create_app
from mailroom.web.probe_answers import NOT_REACHABLE

URL = "postgresql://mailroom_owner:hunter2secret@127.0.0.1:9/prod_mail"  # port 9: refused


def test_the_probes_do_not_describe_the_database_to_anyone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings(environ={"DATABASE_URL": URL, "SECRET_KEY": "k" * 40})
    with caplog.at_level(logging.WARNING), TestClient(create_app(settings)) as client:
        for path in ("/readyz", "/metrics"):
            response = client.get(path)
            assert response.status_code == 503
            assert response.json()["error"]["message"] == NOT_REACHABLE
            for detail in ("hunter2secret", "mailroom_owner", "prod_mail", "127.0.0.1", ":9"):
                assert detail not in response.text, response.text
    logged = caplog.text
    assert "prod_mail" in logged  # the operator still learns which database it was
    assert "hunter2secret" not in logged
