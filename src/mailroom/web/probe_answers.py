"""What ``/readyz`` and ``/metrics`` tell anyone who asks about a database problem.

Both answer without a login, beside the public endpoints, so their 503 says what kind of
problem it is in a fixed sentence and nothing about the database: even redacted, its error
names the user, the host, the port and the database. The details go to the log, where the
operator looks for them.
"""

from __future__ import annotations

import logging

from mailroom.errors import SchemaOutdatedError

__all__ = ["NOT_REACHABLE", "SCHEMA_NOT_CURRENT", "database_problem"]

logger = logging.getLogger(__name__)

NOT_REACHABLE = "the database is not reachable"
SCHEMA_NOT_CURRENT = "the schema is not current: run mailroom db upgrade"


def database_problem(exc: Exception, doing: str) -> str:
    """The fixed sentence for ``exc`` (a :class:`~mailroom.errors.MailroomError` from the
    database or its schema), after logging its details; ``doing`` says what failed, for the
    log."""
    logger.warning("%s: %s", doing, exc)
    if isinstance(exc, SchemaOutdatedError):
        return SCHEMA_NOT_CURRENT
    return NOT_REACHABLE
