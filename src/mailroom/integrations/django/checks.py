"""Django system checks (``manage.py check``, and before ``runserver``/``migrate``) for the
settings the outbox needs from Django's own.

``mailroom.W001``: a SQLite database the outbox shares without ``OPTIONS["transaction_mode"]
= "IMMEDIATE"`` and a ``timeout``. A worker writes the same file; a Django block that began
with a read then fails at its first write with "database is locked" (SQLite cannot upgrade a
read transaction past another writer's commit) instead of waiting its turn.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Warning, register

from mailroom.errors import MailroomError

__all__ = ["check_sqlite_options"]

_README = "see Mailroom's README, section Django (SQLite)"


@register()
def check_sqlite_options(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from django.db import connections  # noqa: PLC0415 - settings must be loaded first

    from mailroom.integrations.django.backend import current_settings  # noqa: PLC0415

    try:
        config = current_settings()
    except MailroomError:
        return []  # a wrong setting is reported where it is used, naming the setting
    if not config.shared or connections[config.alias].vendor != "sqlite":
        return []
    options = connections[config.alias].settings_dict.get("OPTIONS") or {}
    missing = []
    if str(options.get("transaction_mode", "")).upper() != "IMMEDIATE":
        missing.append('"transaction_mode": "IMMEDIATE"')
    if "timeout" not in options:
        missing.append('"timeout": 20')
    if not missing:
        return []
    return [
        Warning(
            f'DATABASES["{config.alias}"] is SQLite and shares the outbox with a worker, but '
            f"its OPTIONS lack {' and '.join(missing)}: a block that writes after the worker "
            'committed fails with "database is locked" instead of waiting',
            hint=f'DATABASES["{config.alias}"]["OPTIONS"] = {{"timeout": 20, '
            f'"transaction_mode": "IMMEDIATE"}} (Django >= 5.1); {_README}',
            id="mailroom.W001",
        )
    ]
