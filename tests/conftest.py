"""Shared fixtures: a real aiosmtpd server on loopback, real TLS certificates from trustme."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from smtp_server import TEST_PASSWORD, ScriptedHandler, ServerFactory, SMTPTestServer
from tls_files import TLSFiles


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    return TLSFiles(ca, ca_path, context)


@pytest.fixture
def smtp_server_factory(tls: TLSFiles) -> Iterator[ServerFactory]:
    """Start scripted servers: ``factory(mode="plain"|"starttls"|"implicit", auth=..., ...)``."""
    started: list[SMTPTestServer] = []

    def start(
        mode: str = "plain",
        *,
        auth: bool = False,
        handler: ScriptedHandler | None = None,
        **smtp_kwargs: Any,
    ) -> SMTPTestServer:
        handler = handler or ScriptedHandler()
        kwargs: dict[str, Any] = dict(smtp_kwargs)
        if mode == "starttls":
            kwargs["tls_context"] = tls.server_context
        if auth:
            kwargs["authenticator"] = handler.authenticate
            kwargs.setdefault("auth_require_tls", mode != "plain")
        server = SMTPTestServer(
            handler, implicit_tls=tls.server_context if mode == "implicit" else None, **kwargs
        )
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def smtp_server(smtp_server_factory: ServerFactory) -> SMTPTestServer:
    """A plain SMTP server that accepts everything."""
    return smtp_server_factory()


@pytest.fixture(autouse=True)
def _no_password_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log line any test produces, at every level, is checked for the test password."""
    caplog.set_level(logging.DEBUG)
    yield
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    for record in records:
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info and record.exc_info[1] is not None:
            text += repr(record.exc_info[1])
        assert TEST_PASSWORD not in text, f"password leaked in log record {record.name}"
