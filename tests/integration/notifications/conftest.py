"""Fixtures from :mod:`support.notifier_fixtures`: an outbox on SQLite and PostgreSQL whose
messages are checked at teardown, a registry, a notifier."""

from support.notifier_fixtures import (  # noqa: F401  (fixtures, found by name)
    make_outbox,
    make_settings,
    notifier,
    outbox,
    outboxes,
    registry,
    settings,
)
