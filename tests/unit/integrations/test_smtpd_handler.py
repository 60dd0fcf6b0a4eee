"""The submission handler's decisions that need no client: who is offered AUTH without a
certificate, and the metadata that names a message's API key."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.smtp import Envelope, Session

from mailroom.config import load_settings
from mailroom.integrations.smtpd.handler import API_KEY_METADATA, SubmissionHandler
from mailroom.integrations.smtpd.server import policy_of
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.raw_submissions import SubmissionWriter
from mailroom.web.api.message_models import API_KEY_METADATA as API_METADATA

EHLO = ["250-mail.example.com", "250-SIZE 1000", "250-AUTH LOGIN PLAIN", "250 HELP"]


@pytest.fixture
def handler(tmp_path: Path) -> Iterator[SubmissionHandler]:
    engine = create_outbox_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    loop = asyncio.new_event_loop()
    writer = SubmissionWriter(engine, loop)
    yield SubmissionHandler(policy_of(load_settings(environ={})), engine, writer)
    assert writer.close(10)
    loop.close()
    engine.dispose()


def ehlo(handler: SubmissionHandler, peer: tuple[str, int]) -> list[str]:
    loop = handler.writer.loop
    session = Session(loop)
    session.peer = peer  # type: ignore[assignment]
    answer = loop.run_until_complete(
        handler.handle_EHLO(None, session, Envelope(), "client.example.com", list(EHLO))  # type: ignore[arg-type]
    )
    assert session.host_name == "client.example.com"
    return answer


def test_without_a_certificate_auth_is_offered_on_loopback_only(handler: SubmissionHandler) -> None:
    assert ehlo(handler, ("127.0.0.1", 40000)) == EHLO
    assert ehlo(handler, ("::1", 40000)) == EHLO
    assert ehlo(handler, ("192.0.2.7", 40000)) == [EHLO[0], EHLO[1], EHLO[3]]


def test_the_api_key_is_recorded_as_the_http_api_records_it() -> None:
    assert API_KEY_METADATA == API_METADATA
