"""Settings and a draft for the campaign hardening tests (from an adversarial review)."""

from __future__ import annotations

from collections import Counter

from mailroom.campaigns.store import CampaignDraft
from mailroom.config import Settings, load_settings
from support.smtp_server import SMTPTestServer

POSTAL = "Mailroom Ltd, 1 Main St, Springfield"


def settings_for(database_url: str, port: int = 1, **extra: str) -> Settings:
    environ = {
        "DATABASE_URL": database_url,
        "DEFAULT_FROM_EMAIL": "News <news@example.com>",
        "EMAIL_BACKEND": "smtp",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "EMAIL_TIMEOUT": "2",
        "WORKER_POLL_INTERVAL": "0.01",
        "PUBLIC_BASE_URL": "https://mail.example.com",
        "SECRET_KEY": "a-test-secret-key-of-some-length-0123456789",
        "ORGANIZATION_POSTAL_ADDRESS": POSTAL,
        "EMAILS_PER_TASK": "20",
        "CAMPAIGN_QUEUE_AHEAD": "60",
    }
    environ.update(extra)
    return load_settings(environ=environ)


def draft(**changes: str) -> CampaignDraft:
    values = {
        "name": "December news",
        "audience": "list:readers",
        "subject": "News for {{ contact.name }}",
        "from_email": "News <news@example.com>",
        "body": "<html><body><p>Hello {{ contact.name }}.</p></body></html>",
    }
    values.update(changes)
    return CampaignDraft(**values)


def received(server: SMTPTestServer) -> Counter[str]:
    return Counter(rcpt for got in server.scripted.received for rcpt in got.rcpt_tos)
