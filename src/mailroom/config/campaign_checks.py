"""Checks of the bulk campaigns' settings, each error naming the setting to change. Run with
every other check (:data:`mailroom.config.checks.CHECKS`).

``ORGANIZATION_POSTAL_ADDRESS`` may be empty here: only sending a campaign needs it, and that
refuses with the setting's name (:func:`mailroom.campaigns.store.check_sendable`)."""

from __future__ import annotations

from mailroom.config.model import Settings
from mailroom.errors import SettingsError

__all__ = ["check_campaign_settings"]

_STREAM_NAME_MAX = 64  # the outbox's stream column
_POSTAL_ADDRESS_MAX = 500
_PER_TASK_MAX = 10_000  # a transaction and a Celery task's worth


def check_campaign_settings(settings: Settings) -> None:
    if not 1 <= settings.EMAILS_PER_TASK <= _PER_TASK_MAX:
        raise SettingsError(
            "EMAILS_PER_TASK", f"must be a whole number from 1 to {_PER_TASK_MAX:,}"
        )
    if settings.CAMPAIGN_QUEUE_AHEAD < settings.EMAILS_PER_TASK:
        raise SettingsError(
            "CAMPAIGN_QUEUE_AHEAD",
            f"must be at least EMAILS_PER_TASK ({settings.EMAILS_PER_TASK}), or no batch "
            "could ever be queued",
        )
    if not 0 < settings.CAMPAIGN_MAX_FAILURE_RATE <= 1:
        raise SettingsError(
            "CAMPAIGN_MAX_FAILURE_RATE", "must be a share above 0 and at most 1, e.g. 0.2"
        )
    if settings.CAMPAIGN_FAILURE_SAMPLE < 1:
        raise SettingsError("CAMPAIGN_FAILURE_SAMPLE", "must be a whole number of 1 or more")
    stream = settings.CAMPAIGN_STREAM
    if not 1 <= len(stream) <= _STREAM_NAME_MAX or stream != stream.strip():
        raise SettingsError(
            "CAMPAIGN_STREAM", f"must be a stream name of 1 to {_STREAM_NAME_MAX} characters"
        )
    if settings.CAMPAIGN_FANOUT not in {"worker", "celery"}:
        raise SettingsError("CAMPAIGN_FANOUT", "must be 'worker' or 'celery'")
    address = settings.ORGANIZATION_POSTAL_ADDRESS
    if len(address) > _POSTAL_ADDRESS_MAX or "\x00" in address:
        raise SettingsError(
            "ORGANIZATION_POSTAL_ADDRESS",
            f"must be a postal address of at most {_POSTAL_ADDRESS_MAX} characters",
        )
