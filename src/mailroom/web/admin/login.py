"""Signing in and out: ``GET /admin/login`` (the form), ``POST /admin/login``, ``POST
/admin/logout``.

The login form is CSRF-protected like every other: its token comes from a pre-session made
when the form is shown, so another site cannot sign a browser in to an account of its
choosing. A wrong password and an unknown name get the same answer, after the same scrypt
work; after too many failures (:mod:`.throttle`) the answer is 429 with the wait.
"""

from __future__ import annotations

import math
import time
from functools import partial

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mailroom.access import check_login, end_sessions
from mailroom.access.admin_users import USERNAME_MAX_LENGTH
from mailroom.web.admin.auth import safe_next
from mailroom.web.admin.csrf import CheckedForm
from mailroom.web.admin.rendering import flash, render_page
from mailroom.web.admin.sessions import (
    admin_path,
    end_session,
    new_session,
    read_session,
    start_pre_session,
    write_session,
)
from mailroom.web.admin.throttle import LoginThrottle

__all__ = ["login_router"]

_REFUSED = "Wrong user name or password."
_PASSWORD_CHECKS = 2  # scrypt runs at once: each takes a core and 64 MiB for ~0.25 s


def login_router() -> APIRouter:
    """The routes that sign in and out, with a throttle of their own (one per app)."""
    router = APIRouter()
    throttle = LoginThrottle()
    password_checks = anyio.CapacityLimiter(_PASSWORD_CHECKS)

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "") -> Response:
        return _form(request, safe_next(request, next))

    @router.post("/login", response_class=HTMLResponse)
    async def login(request: Request, form: CheckedForm) -> Response:
        username = str(form.get("username") or "")[: USERNAME_MAX_LENGTH + 1]
        password = str(form.get("password") or "")
        target = safe_next(request, str(form.get("next") or ""))
        address = request.client.host if request.client is not None else "unknown"
        now = time.time()
        wait = throttle.attempt(username, address, now)
        if wait > 0:
            minutes = max(1, math.ceil(wait / 60))
            response = _form(
                request,
                target,
                username=username,
                error=(
                    f"Too many failed sign-ins. Try again in {minutes} "
                    f"minute{'' if minutes == 1 else 's'}."
                ),
                status_code=429,
            )
            response.headers["Retry-After"] = str(math.ceil(wait))
            return response
        # Attempts past the limiter's few wait here, in the event loop, not in a worker
        # thread: a flood of sign-ins takes neither every thread nor 64 MiB per attempt.
        user = await anyio.to_thread.run_sync(
            partial(
                check_login,
                request.app.state.engine,
                username,
                password,
                now,
                reader=request.app.state.read_engine,
            ),
            limiter=password_checks,
        )
        if user is None:
            return _form(request, target, username=username, error=_REFUSED, status_code=401)
        throttle.succeeded(username, address, now)
        redirect = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
        # A new session, never the pre-session's: a planted cookie is not promoted.
        write_session(request, redirect, new_session(user.id, user.session_epoch))
        return redirect

    @router.post("/logout")
    def logout(request: Request, form: CheckedForm) -> Response:
        del form  # read for its CSRF check: another site must not sign anyone out
        session = read_session(request)
        if session is not None and session.user_id is not None:
            # Signing out ends every session of this account, not only this browser's: a
            # session is nothing but its cookie, so raising the account's epoch is what makes
            # a copy of the cookie (kept elsewhere, or stolen) stop working, in every process
            # and after a restart.
            with request.app.state.engine.begin() as connection:
                end_sessions(connection, session.user_id, session.epoch)
        redirect = RedirectResponse(
            f"{admin_path(request)}/login", status_code=303, headers={"Cache-Control": "no-store"}
        )
        end_session(request, redirect)
        flash(redirect, "You are signed out.", "info")
        return redirect

    return router


def _form(
    request: Request,
    target: str,
    *,
    username: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    made = start_pre_session(request)
    response = render_page(
        request,
        "login.html",
        {"next": target, "username": username, "error": error},
        status_code=status_code,
        nav="",
    )
    if made is not None:
        write_session(request, response, made)
    return response
