"""Mailroom's settings under Django: Django's own email settings, and a ``MAILROOM`` dict for
the rest, read from ``django.conf.settings`` and nothing else (no settings file, no
environment: a Django project has one place for its settings).

``MAILROOM["DATABASE"]`` (default ``"default"``) names the Django database alias whose
transactions a send joins. Without ``MAILROOM["DATABASE_URL"]`` the outbox tables live in that
database (the transactional outbox); with it, they live there and a send waits for the alias's
commit (see :mod:`mailroom.integrations.django.outbox`). ``MAILROOM["ASYNC_SEND_TIMEOUT"]``
bounds the wait of a send from async code (see :mod:`mailroom.integrations.django.off_loop`).
These two are the backend's own; every other key is a Mailroom setting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.conf import settings as django_settings
from django.db import connections
from sqlalchemy.engine import URL

from mailroom.config import Settings
from mailroom.config.loading import settings_from_mapping
from mailroom.errors import SettingsError

__all__ = [
    "DEFAULT_ASYNC_SEND_TIMEOUT",
    "DjangoMailroomSettings",
    "database_url_of_alias",
    "mailroom_settings",
    "postgres_url",
]

DEFAULT_ASYNC_SEND_TIMEOUT = 30.0
"""Seconds a send from async code waits for its commit: above the 20-second busy timeout the
README recommends for a SQLite alias, so that a lock held too long is reported as the
database's own error (``database is locked``) first."""

# Django's names that mean the same in Mailroom; each is passed when Django has it.
DJANGO_EMAIL_SETTINGS = (
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_HOST_USER",
    "EMAIL_HOST_PASSWORD",
    "EMAIL_USE_TLS",
    "EMAIL_USE_SSL",
    "EMAIL_TIMEOUT",
    "EMAIL_SSL_CERTFILE",
    "EMAIL_SSL_KEYFILE",
    "DEFAULT_FROM_EMAIL",
    "SERVER_EMAIL",
    "EMAIL_SUBJECT_PREFIX",
    "ADMINS",
)

# Of those, the ones whose Django default is not what a Mailroom user expects, taken only when
# the project sets them:
# - EMAIL_SUBJECT_PREFIX: Django's "[Django] " is for mail_admins (Django puts it only there);
#   Mailroom puts its prefix on every notification (default none).
# - SERVER_EMAIL: Django's "root@localhost" is what Django's mail_admins passes as From (it
#   still does, through this backend); Mailroom's own error mail falls back to
#   DEFAULT_FROM_EMAIL instead, an address the relay accepts.
# The others' Django defaults are what Django's own backends use (DEFAULT_FROM_EMAIL
# "webmaster@localhost", EMAIL_HOST "localhost", port 25, no TLS), so Mailroom takes them as
# they are: switching EMAIL_BACKEND changes nothing else. ADMINS' default is empty.
_ONLY_WHEN_SET = frozenset({"EMAIL_SUBJECT_PREFIX", "SERVER_EMAIL"})


@dataclass(frozen=True)
class DjangoMailroomSettings:
    """Mailroom's settings, and how the outbox meets Django's transactions."""

    local: Settings
    """The settings for work on Django's own connection (enqueueing, notifications, the
    migration). In the shared mode its ``DATABASE_URL`` is not the outbox's: use
    :attr:`settings` to open a connection."""
    alias: str
    """The Django database alias whose transactions a send joins."""
    shared: bool
    """The outbox tables are in ``alias``'s database (committed with the application's data);
    otherwise in ``MAILROOM["DATABASE_URL"]``, written after ``alias`` commits."""
    async_timeout: float = DEFAULT_ASYNC_SEND_TIMEOUT
    """Seconds a send made where an event loop runs waits for its commit on the thread that
    makes it (``MAILROOM["ASYNC_SEND_TIMEOUT"]``)."""

    @cached_property
    def settings(self) -> Settings:
        """The settings with ``DATABASE_URL`` naming the outbox, for what opens a connection
        of its own (the worker, the signals, ``mailroom_status``, ``mailroom_migrate``).

        Worked out when first asked, not when the settings are read: Django's test runner
        renames a SQLite test database to a shared-cache memory database no second
        connection can open (a :class:`SettingsError` here), and sending mail or migrating
        there must still work — they never open one."""
        if not self.shared:
            return self.local
        url = database_url_of_alias(self.alias)
        return self.local.model_copy(update={"DATABASE_URL": url})


def _admins(value: Any) -> list[str]:
    """Django's ``ADMINS``: ``(name, address)`` pairs (Django ≤ 5.2) or addresses (6.0)."""
    out: list[str] = []
    for entry in value or ():
        if isinstance(entry, list | tuple):
            name, address = entry
            if not name:
                out.append(str(address))
                continue
            # An RFC 5322 quoted-string (§3.2.4): a comma or quote in a name stays in it.
            quoted = str(name).replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'"{quoted}" <{address}>')
        else:
            out.append(str(entry))
    return out


def database_url_of_alias(alias: str) -> str:
    """A SQLAlchemy URL for the database behind a Django alias (for the worker and the
    migrations, which open connections of their own)."""
    if alias not in connections:
        raise SettingsError("MAILROOM", f"DATABASE names {alias!r}, which is not in DATABASES")
    wrapper = connections[alias]
    params = wrapper.settings_dict
    name = str(params.get("NAME") or "")
    if wrapper.vendor == "sqlite":
        if not name or name == ":memory:" or name.startswith("file:"):
            raise SettingsError(
                "MAILROOM",
                f"the database {alias!r} is a SQLite memory database, which a worker cannot "
                'open; name a file, or set MAILROOM["DATABASE_URL"]',
            )
        return f"sqlite:///{name}"
    if wrapper.vendor == "postgresql":
        return postgres_url(params)
    raise SettingsError(
        "MAILROOM",
        f"the database {alias!r} is {wrapper.vendor}; the outbox runs on SQLite or PostgreSQL. "
        'Set MAILROOM["DATABASE_URL"] to one of those',
    )


def postgres_url(params: Mapping[str, Any]) -> str:
    """A SQLAlchemy URL for a Django PostgreSQL ``DATABASES`` entry."""
    name = str(params.get("NAME") or "")
    host = str(params.get("HOST") or "") or None
    query = _libpq_options(params.get("OPTIONS") or {})
    if host is not None and host.startswith("/"):
        # A Unix socket directory, as Django (libpq) takes it: in a URL's authority it would
        # become the path, and the path the database name. libpq reads it from the query
        # instead (postgresql:///name?host=/var/run/postgresql).
        query["host"] = host
        host = None
    url = URL.create(
        f"postgresql+{postgres_driver()}",
        username=params.get("USER") or None,
        password=params.get("PASSWORD") or None,
        host=host,
        port=int(params["PORT"]) if params.get("PORT") else None,
        database=name or None,
        query=query,
    )
    return url.render_as_string(hide_password=False)


# OPTIONS of Django's PostgreSQL backend that are Django's own, not libpq's connection
# parameters (sslmode, sslrootcert, application_name, connect_timeout... pass through).
_DJANGO_ONLY_OPTIONS = frozenset(
    {"isolation_level", "server_side_binding", "pool", "assume_role", "cursor_factory"}
)


def _libpq_options(options: Mapping[str, Any]) -> dict[str, str]:
    """The alias's ``OPTIONS`` a worker's own connection needs too (TLS, for one)."""
    return {
        key: str(value)
        for key, value in options.items()
        if key not in _DJANGO_ONLY_OPTIONS
        and isinstance(value, str | int)
        and not isinstance(value, bool)
    }


def postgres_driver() -> str:
    """The driver Django's PostgreSQL backend uses: psycopg (3) when installed, else
    psycopg2, as Django chooses."""
    from django.db.backends.postgresql import psycopg_any  # noqa: PLC0415 - needs a driver

    return "psycopg" if psycopg_any.is_psycopg3 else "psycopg2"


def mailroom_settings() -> DjangoMailroomSettings:
    """Read Django's settings afresh (see the module docstring)."""
    raw: Mapping[str, Any] = getattr(django_settings, "MAILROOM", None) or {}
    if not isinstance(raw, Mapping):
        raise SettingsError("MAILROOM", f"must be a dict, not {type(raw).__name__}")
    values: dict[str, Any] = {}
    for name in DJANGO_EMAIL_SETTINGS:
        if name in _ONLY_WHEN_SET and not django_settings.is_overridden(name):
            continue  # Django's default is for its own use, not Mailroom's (see above)
        value = getattr(django_settings, name, None)
        if value is None:
            continue
        values[name] = _admins(value) if name == "ADMINS" else value
    extra = dict(raw)
    alias = extra.pop("DATABASE", "default")
    if not isinstance(alias, str):
        raise SettingsError("MAILROOM", f"DATABASE must be an alias (str), not {alias!r}")
    async_timeout = _async_timeout(extra.pop("ASYNC_SEND_TIMEOUT", DEFAULT_ASYNC_SEND_TIMEOUT))
    values.update(extra)
    shared = "DATABASE_URL" not in extra
    if shared and alias not in connections:
        raise SettingsError("MAILROOM", f"DATABASE names {alias!r}, which is not in DATABASES")
    # Shared: DATABASE_URL stays Mailroom's default, unused; see DjangoMailroomSettings.
    settings = settings_from_mapping(values)
    return DjangoMailroomSettings(settings, alias, shared, async_timeout)


def _async_timeout(value: object) -> float:
    """``MAILROOM["ASYNC_SEND_TIMEOUT"]``: seconds, above zero (no "wait for ever": an event
    loop blocked without end stops every request it serves)."""
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    ):
        return float(value)
    raise SettingsError(
        "MAILROOM",
        f"ASYNC_SEND_TIMEOUT must be a number of seconds above 0, not {value!r}",
    )
