"""How the database will run a statement: the plan the benches print and the tests check, so
an index that a new one quietly displaced shows up as a failing test, not as a slower worker."""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.sql import ClauseElement

__all__ = ["explain"]


def explain(connection: Connection, statement: ClauseElement) -> list[str]:
    """SQLite's ``EXPLAIN QUERY PLAN`` or PostgreSQL's ``EXPLAIN`` of ``statement``, a line
    per step. The values are written into the SQL (``literal_binds``), as the planner may
    choose differently for a value than for a parameter."""
    sql = statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
    if connection.dialect.name == "sqlite":
        return [str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
    return [str(row[0]) for row in connection.exec_driver_sql(f"EXPLAIN {sql}")]
