"""``/healthz`` and ``/readyz``: what a load balancer or an orchestrator asks.

``/healthz`` says the process serves: 200 whatever the database does, so a restart is never
ordered for a database outage it would not cure. ``/readyz`` says it can do its work: the
database answers and its schema is the one this version needs; otherwise 503 with the error
shape and the kind of problem (the details go to the log). The check is bounded
(:data:`READY_TIMEOUT`): a database that hangs makes ``/readyz`` answer 503 in time, not hang
the probe; on SQLite it reads without the write lock (:mod:`mailroom.outbox.read_engine`), so
a busy writer never makes the service look unready. A check still running when the next probe
comes is waited for again rather than started twice (:mod:`.single_flight`).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from mailroom.errors import MailroomError
from mailroom.outbox.database import check_schema
from mailroom.outbox.read_engine import read_only_engine
from mailroom.web.errors import error_response
from mailroom.web.probe_answers import database_problem
from mailroom.web.single_flight import SingleFlight

__all__ = ["READY_TIMEOUT", "ReadinessCheck", "router"]

logger = logging.getLogger(__name__)

READY_TIMEOUT = 5.0
"""Seconds ``/readyz`` waits for the database before it answers 503."""

router = APIRouter(include_in_schema=False)


class ReadinessCheck:
    """The schema check of one engine, bounded and one at a time."""

    def __init__(self, engine: Engine, timeout: float = READY_TIMEOUT) -> None:
        reader = read_only_engine(engine)
        self._flight = SingleFlight(
            lambda: check_schema(reader), name="mailroom-readyz", timeout=timeout
        )

    async def problem(self) -> str | None:
        """``None`` when ready; else the reason, fit to be shown to anyone (a fixed sentence,
        see :mod:`.probe_answers`)."""
        try:
            await self._flight.run()
        except TimeoutError:
            return f"the database did not answer within {self._flight.timeout:g} s"
        except MailroomError as exc:  # the schema, or the database's own error: logged only
            return database_problem(exc, "readiness check failed")
        except Exception as exc:
            logger.warning("readiness check failed", exc_info=True)
            return f"the database check failed ({type(exc).__name__})"
        return None


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(request: Request) -> dict[str, str] | JSONResponse:
    check: ReadinessCheck | None = getattr(request.app.state, "readiness", None)
    if check is None:
        check = request.app.state.readiness = ReadinessCheck(request.app.state.engine)
    problem = await check.problem()
    if problem is not None:
        return error_response(503, "not_ready", problem)
    return {"status": "ready"}
