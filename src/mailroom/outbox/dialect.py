"""The one place that knows SQLite's and PostgreSQL's ``INSERT`` apart.

Both dialects spell ``INSERT ... ON CONFLICT`` the same way in SQL, but SQLAlchemy builds it
from each dialect's own ``insert()``; every upsert in the query modules starts here.
"""

from __future__ import annotations

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["dialect_insert"]


def dialect_insert(connection: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """``INSERT`` into ``table`` in the connection's dialect, which knows ``ON CONFLICT``."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
