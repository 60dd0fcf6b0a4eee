"""Mailroom's outbox schema revision 0013 (mailing lists, contacts, campaigns and their
ledger, see :mod:`mailroom.campaigns`), for a database whose earlier migrations ran before it:
the same upgrade of the one Alembic chain, to its newest revision."""

from __future__ import annotations

from typing import ClassVar

from django.db import migrations

from mailroom.integrations.django.schema import upgrade_in_migration


class Migration(migrations.Migration):
    dependencies: ClassVar[list[tuple[str, str]]] = [("mailroom", "0002_signal_cursors")]
    operations: ClassVar[list[migrations.operations.base.Operation]] = [
        migrations.RunPython(upgrade_in_migration, migrations.RunPython.noop, elidable=False)
    ]
