"""The Django app, for the management commands (``INSTALLED_APPS``)."""

from __future__ import annotations

from django.apps import AppConfig


class MailroomConfig(AppConfig):
    name = "mailroom.integrations.django"
    label = "mailroom"
    verbose_name = "Mailroom"

    def ready(self) -> None:
        from mailroom.integrations.django import checks  # noqa: F401, PLC0415 - registers
