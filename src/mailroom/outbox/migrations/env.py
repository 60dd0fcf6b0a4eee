"""Alembic environment: runs migrations on the engine Mailroom hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from mailroom.outbox.schema import metadata

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):  # pragma: no cover - only reachable through plain `alembic`
    raise RuntimeError("run migrations with `mailroom db upgrade`")

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata)
    context.run_migrations()
