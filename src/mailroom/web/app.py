"""The app factory: one FastAPI application with the API under ``/api/v1``, the admin pages
under ``/admin`` and the public endpoints at the root. ``mailroom serve`` runs it on uvicorn
with an embedded worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.types import Lifespan

from mailroom.config import Settings
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.read_engine import read_only_engine
from mailroom.outbox.wal_checkpoints import WalCheckpointer
from mailroom.web import api, health, metrics
from mailroom.web.admin import STATIC_DIRECTORY, admin_router
from mailroom.web.admin.interruptions import install_interruptions
from mailroom.web.body_limit import BodyLimit
from mailroom.web.dependencies import install_services
from mailroom.web.errors import install_error_handlers
from mailroom.web.paths import ADMIN_PREFIX, API_PREFIX
from mailroom.web.public import install_hit_routes, public_router

__all__ = ["API_PREFIX", "create_app"]


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    lifespan: Lifespan[FastAPI] | None = None,
) -> FastAPI:
    """The application for ``settings``; ``engine`` is the outbox database (made from
    ``DATABASE_URL`` when not given). The caller checks the schema before serving;
    ``lifespan`` is what runs beside it (``mailroom serve``'s embedded worker)."""
    app = FastAPI(
        lifespan=lifespan,
        title="Mailroom",
        summary="Outbound email: a durable outbox, notifications, suppressions, tracking.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        # No redirect to add or drop a trailing slash: Starlette builds its Location from
        # the request's Host header, which anyone can set.
        redirect_slashes=False,
    )
    app.state.settings = settings
    if engine is None:
        # Its log is checkpointed by a thread of the app's, not by the request that commits.
        engine = create_outbox_engine(
            settings.DATABASE_URL, single_writer=True, autocheckpoint=False
        )
        app.include_router(_checkpoints(engine))
    app.state.engine = engine
    # Reads (API keys, messages, captured mail, lists) take no write lock on SQLite.
    app.state.read_engine = read_only_engine(app.state.engine)
    install_error_handlers(app)
    install_services(app)
    app.add_middleware(BodyLimit, max_bytes=settings.API_MAX_BODY_BYTES)
    install_hit_routes(app)  # first: the pixel is the endpoint hit most
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(public_router())
    app.include_router(api.router, prefix=API_PREFIX)
    install_interruptions(app)
    app.mount(
        f"{ADMIN_PREFIX}/static", StaticFiles(directory=STATIC_DIRECTORY), name="admin-static"
    )
    app.include_router(admin_router(), prefix=ADMIN_PREFIX)
    return app


def _checkpoints(engine: Engine) -> APIRouter:
    """A router whose lifespan checkpoints ``engine``'s log while the app runs."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        checkpointer = WalCheckpointer(engine)
        checkpointer.start()
        try:
            yield
        finally:
            await run_in_threadpool(checkpointer.close)

    return APIRouter(lifespan=lifespan)
