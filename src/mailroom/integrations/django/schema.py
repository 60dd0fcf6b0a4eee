"""The outbox tables, made by Django's ``migrate`` (the ``mailroom`` app's migrations) or by
``manage.py mailroom_migrate``; both run Mailroom's one Alembic chain.

In a Django migration the chain runs on Django's own connection (the engine of
:mod:`~mailroom.integrations.django.connection`), inside the migration's transaction: there is
no second connection, so on SQLite nothing waits for the lock Django's migration holds. It
runs only in the database the outbox shares (``MAILROOM["DATABASE"]`` without
``DATABASE_URL``); a separate outbox database is ``mailroom_migrate``'s.
"""

from __future__ import annotations

from typing import Any

from mailroom.integrations.django.backend import current_settings
from mailroom.integrations.django.connection import borrowed_engine
from mailroom.outbox.database import upgrade

__all__ = ["upgrade_in_migration"]


def upgrade_in_migration(apps: Any, schema_editor: Any) -> None:
    """``RunPython``: bring the outbox in this database to the newest revision."""
    config = current_settings()
    alias = schema_editor.connection.alias
    if config.shared and alias == config.alias:
        upgrade(borrowed_engine(alias))
