"""Alembic environment: runs migrations on the engine Mailroom hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from mailroom.outbox.database import VERSION_TABLE
from mailroom.outbox.schema import metadata

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):  # pragma: no cover - only reachable through plain `alembic`
    raise RuntimeError("run migrations with `mailroom db upgrade`")

with engine.begin() as connection:
    # A version table of our own: the application sharing this database may use Alembic too.
    context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
    context.run_migrations()
