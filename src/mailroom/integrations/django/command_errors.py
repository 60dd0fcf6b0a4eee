"""Errors of the management commands as a Django operator reads them: one line, a
``CommandError`` (no traceback), naming the database alias of ``DATABASES`` they set rather
than a ``DATABASE_URL`` they never wrote, and ``manage.py`` commands rather than the
``mailroom`` CLI's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError
from sqlalchemy.exc import SQLAlchemyError

from mailroom.errors import DatabaseError, MailroomError, SchemaOutdatedError
from mailroom.integrations.django.settings import DjangoMailroomSettings

__all__ = ["as_command_errors", "where"]


def where(config: DjangoMailroomSettings) -> str:
    """The outbox database as the project's settings name it."""
    if config.shared:
        return f'the outbox in DATABASES["{config.alias}"]'
    return 'the outbox in MAILROOM["DATABASE_URL"]'


def _migrate_command(config: DjangoMailroomSettings) -> str:
    return "manage.py migrate" if config.shared else "manage.py mailroom_migrate"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def command_error(config: DjangoMailroomSettings | None, exc: BaseException) -> CommandError:
    """``exc`` as a one-line :class:`CommandError`."""
    if config is None:  # the settings themselves are wrong: their error names the setting
        return CommandError(_first_line(exc))
    if isinstance(exc, SchemaOutdatedError):
        return CommandError(
            f"{where(config)} is not at the revision this Mailroom needs (or has no tables "
            f"yet): run `{_migrate_command(config)}`"
        )
    if isinstance(exc, DatabaseError | SQLAlchemyError):
        detail = _first_line(exc)
        if config.shared:
            detail = detail.replace("(DATABASE_URL)", "").replace("DATABASE_URL", "the URL")
        detail = detail.replace("mailroom db upgrade", _migrate_command(config))
        return CommandError(f"{where(config)} cannot be used: {detail}")
    return CommandError(str(exc))


@contextmanager
def as_command_errors(config: DjangoMailroomSettings | None) -> Iterator[None]:
    """Mailroom's and the database's errors inside as :func:`command_error`'s."""
    try:
        yield
    except CommandError:
        raise
    except (MailroomError, SQLAlchemyError) as exc:
        raise command_error(config, exc) from exc


def connecting_settings() -> DjangoMailroomSettings:
    """The project's Mailroom settings, ``DATABASE_URL`` worked out for a connection of the
    command's own; a wrong setting is a :class:`CommandError` naming it."""
    from mailroom.integrations.django.backend import current_settings  # noqa: PLC0415 - cycle

    with as_command_errors(None):
        config = current_settings()
        config.settings  # noqa: B018 - worked out now, so that a wrong alias is reported here
        return config
