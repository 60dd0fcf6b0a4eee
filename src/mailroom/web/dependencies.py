"""What a route gets from the app it runs in: the settings and the outbox database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection, Engine

from mailroom.config import Settings

__all__ = ["DatabaseConnection", "DatabaseEngine", "ServiceSettings", "engine_of", "settings_of"]


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def connection_of(engine: Annotated[Engine, Depends(engine_of)]) -> Iterator[Connection]:
    """A connection for the request; the route commits what it writes (``connection.commit``)."""
    with engine.connect() as connection:
        yield connection


ServiceSettings = Annotated[Settings, Depends(settings_of)]
DatabaseEngine = Annotated[Engine, Depends(engine_of)]
DatabaseConnection = Annotated[Connection, Depends(connection_of)]
