"""Mailroom for Django: an ``EMAIL_BACKEND`` that commits every message to the outbox (in the
application's own transaction, by default), management commands, and signals.

Settings::

    INSTALLED_APPS = [..., "mailroom.integrations.django"]
    EMAIL_BACKEND = "mailroom.integrations.django.EmailBackend"
    MAILROOM = {"DATABASE": "default"}  # and any other Mailroom setting

Then ``manage.py mailroom_migrate`` (the outbox tables) and ``manage.py mailroom_worker``.
"""

from mailroom.integrations.django.backend import EmailBackend

__all__ = ["EmailBackend"]
