"""The outbox tables in the database Mailroom shares with the project (see
:mod:`mailroom.integrations.django.schema`). A later Mailroom release whose outbox schema
changes ships one more migration that runs the same upgrade; ``mailroom_migrate`` does the
same at any time. Reversing leaves the tables: they may hold mail not yet sent."""

from __future__ import annotations

from typing import ClassVar

from django.db import migrations

from mailroom.integrations.django.schema import upgrade_in_migration


class Migration(migrations.Migration):
    initial = True
    dependencies: ClassVar[list[tuple[str, str]]] = []
    operations: ClassVar[list[migrations.operations.base.Operation]] = [
        migrations.RunPython(upgrade_in_migration, migrations.RunPython.noop, elidable=False)
    ]
