"""Mailroom's outbox schema revision 0012 (the signal cursor, see
:mod:`mailroom.outbox.signal_cursor_queries`), for a database whose ``0001_outbox`` ran
before it: the same upgrade of the one Alembic chain, to its newest revision."""

from __future__ import annotations

from typing import ClassVar

from django.db import migrations

from mailroom.integrations.django.schema import upgrade_in_migration


class Migration(migrations.Migration):
    dependencies: ClassVar[list[tuple[str, str]]] = [("mailroom", "0001_outbox")]
    operations: ClassVar[list[migrations.operations.base.Operation]] = [
        migrations.RunPython(upgrade_in_migration, migrations.RunPython.noop, elidable=False)
    ]
