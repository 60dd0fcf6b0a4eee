"""What a route gets from the app it runs in: the settings, the outbox database, the outbox
and the notifier (one of each per app, made at start by :func:`install_services`).

The getters are ``async``: FastAPI runs a plain ``def`` dependency in its thread pool, and a
hop there and back for each of them cost more than a whole send.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy import Connection, Engine

from mailroom.config import Settings
from mailroom.notifications import Notifier
from mailroom.notifications.registry import service_registry
from mailroom.outbox.group_commit import GroupCommit
from mailroom.outbox.store import Outbox

__all__ = [
    "DatabaseConnection",
    "DatabaseEngine",
    "ReadEngine",
    "ServiceNotifier",
    "ServiceOutbox",
    "ServiceSettings",
    "engine_of",
    "install_services",
    "read_engine_of",
    "settings_of",
]


def install_services(app: FastAPI) -> None:
    """The app's outbox (on its engine) and its notifier, whose types are the settings file's
    ``NOTIFICATION_TYPES`` over those registered from Python; templates come from
    ``EMAIL_TEMPLATE_DIRS`` and the database. A bad declaration fails here, at start."""
    settings: Settings = app.state.settings
    outbox = Outbox(settings, engine=app.state.engine)
    app.state.outbox = outbox
    # Single sends through the API are committed in groups (mailroom.outbox.group_commit).
    app.state.group_commit = GroupCommit(outbox)
    app.state.notifier = Notifier(outbox, service_registry(settings.NOTIFICATION_TYPES))


async def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def read_engine_of(request: Request) -> Engine:
    """The engine for reads alone: on SQLite a read-only one that never takes the write lock
    (:mod:`mailroom.outbox.read_engine`), so a read never waits behind a send."""
    engine: Engine = request.app.state.read_engine
    return engine


def connection_of(engine: Annotated[Engine, Depends(engine_of)]) -> Iterator[Connection]:
    """A connection for the request; the route commits what it writes (``connection.commit``)."""
    with engine.connect() as connection:
        yield connection


ServiceSettings = Annotated[Settings, Depends(settings_of)]
DatabaseEngine = Annotated[Engine, Depends(engine_of)]
ReadEngine = Annotated[Engine, Depends(read_engine_of)]
DatabaseConnection = Annotated[Connection, Depends(connection_of)]


async def outbox_of(request: Request) -> Outbox:
    outbox: Outbox = request.app.state.outbox
    return outbox


async def notifier_of(request: Request) -> Notifier:
    notifier: Notifier = request.app.state.notifier
    return notifier


ServiceOutbox = Annotated[Outbox, Depends(outbox_of)]
ServiceNotifier = Annotated[Notifier, Depends(notifier_of)]
