"""The admin session: a signed cookie naming the signed-in account and the CSRF token of
its forms.

The cookie ``mailroom_session`` holds ``{"sid", "uid", "ep", "csrf"}`` signed with itsdangerous
(``SECRET_KEY`` under a salt of its own, or a random key made per process when
``SECRET_KEY`` is unset: sessions then end when the process does, which ``serve`` says when
it starts). Before sign-in the same cookie holds a session without ``uid`` (a "pre-session"),
so the login form has a CSRF token too. Signing in always makes a new session (new ``sid``
and token): a cookie planted before sign-in is never promoted (session fixation).

The cookie is ``HttpOnly`` (no script reads it), ``SameSite=Lax`` (another site's POST does
not carry it), ``Secure`` when the request came over https (uvicorn takes the scheme from
``X-Forwarded-Proto`` only from the proxies in ``FORWARDED_ALLOW_IPS``), its path is the
admin's, and it lives 12 hours at most, which the signature's time enforces too.

``ep`` is the account's session epoch at sign-in; a session is only good while the account
(in the database) still has that epoch (:func:`~mailroom.web.admin.auth.current_admin`).
Signing out and a new password raise it, so a copy of the cookie kept elsewhere stops working
at once, in every process and after a restart, rather than when it expires.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from fastapi import Request, Response
from itsdangerous import BadData, URLSafeTimedSerializer

from mailroom.config import Settings

__all__ = [
    "COOKIE_NAME",
    "SESSION_MAX_AGE",
    "Session",
    "admin_path",
    "clear_session",
    "end_session",
    "new_session",
    "read_session",
    "start_pre_session",
    "uses_process_key",
    "write_session",
]

COOKIE_NAME = "mailroom_session"
SESSION_MAX_AGE = 12 * 3600
"""Seconds a session lives after it was made (sign-in), whatever it does meanwhile."""
_SALT = "mailroom.admin.session.v1"
_SCOPE_KEY = "mailroom.admin_session"  # the request's session, once read or made
_COOKIE_MAX_CHARS = 512  # ours is ~150; anything longer is not ours

# Used when SECRET_KEY is unset: sessions survive nothing but this process.
_PROCESS_KEY = secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Session:
    """One browser's session: ``user_id`` is ``None`` before sign-in; ``epoch`` is the
    account's session epoch when it signed in (0 before)."""

    sid: str
    user_id: int | None
    epoch: int
    csrf_token: str
    issued_at: float


def uses_process_key(settings: Settings) -> bool:
    """Whether sessions are signed with a per-process key (``SECRET_KEY`` is unset)."""
    return not settings.SECRET_KEY.get_secret_value()


def admin_path(request: Request) -> str:
    """The URL path of the admin pages, behind whatever path a proxy serves Mailroom under."""
    return str(request.scope.get("root_path", "")).rstrip("/") + "/admin"


def new_session(user_id: int | None, epoch: int = 0) -> Session:
    """A fresh session with its own id and CSRF token, for the account ``user_id`` at its
    session ``epoch``."""
    return Session(
        sid=secrets.token_urlsafe(16),
        user_id=user_id,
        epoch=epoch,
        csrf_token=secrets.token_urlsafe(32),
        issued_at=time.time(),
    )


def read_session(request: Request) -> Session | None:
    """The request's session if its cookie is ours, intact and younger than 12 hours;
    ``None`` otherwise. Whether its account still has its epoch is the caller's to check."""
    cached = request.scope.get(_SCOPE_KEY)
    if isinstance(cached, Session):
        return cached
    raw = request.cookies.get(COOKIE_NAME)
    if not raw or len(raw) > _COOKIE_MAX_CHARS:
        return None
    try:
        data, issued = _serializer(request).loads(
            raw, max_age=SESSION_MAX_AGE, return_timestamp=True
        )
    except BadData:
        return None
    if not isinstance(data, dict):
        return None
    sid, uid, epoch, csrf = data.get("sid"), data.get("uid"), data.get("ep"), data.get("csrf")
    if not isinstance(sid, str) or not isinstance(csrf, str) or not isinstance(epoch, int):
        return None
    if uid is not None and not isinstance(uid, int):
        return None
    session = Session(
        sid=sid, user_id=uid, epoch=epoch, csrf_token=csrf, issued_at=issued.timestamp()
    )
    request.scope[_SCOPE_KEY] = session
    return session


def start_pre_session(request: Request) -> Session | None:
    """For the login form: a new pre-session, made this request's own (so the page renders
    its CSRF token), if the request has no session; the caller writes it on its response.
    ``None`` when the request has one already."""
    if read_session(request) is not None:
        return None
    session = new_session(None)
    request.scope[_SCOPE_KEY] = session
    return session


def write_session(request: Request, response: Response, session: Session) -> None:
    """Set the cookie carrying ``session`` on ``response``; later reads in this request see
    it too."""
    value = _serializer(request).dumps(
        {
            "sid": session.sid,
            "uid": session.user_id,
            "ep": session.epoch,
            "csrf": session.csrf_token,
        }
    )
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=SESSION_MAX_AGE,
        path=admin_path(request),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    request.scope[_SCOPE_KEY] = session


def end_session(request: Request, response: Response) -> None:
    """Forget the request's session and tell the browser to drop its cookie (the caller
    ends the account's sessions in the database: :func:`mailroom.access.end_sessions`)."""
    request.scope.pop(_SCOPE_KEY, None)
    clear_session(request, response)


def clear_session(request: Request, response: Response) -> None:
    """Tell the browser to drop the session cookie."""
    response.delete_cookie(
        COOKIE_NAME,
        path=admin_path(request),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )


def _serializer(request: Request) -> URLSafeTimedSerializer:
    settings: Settings = request.app.state.settings
    key = settings.SECRET_KEY.get_secret_value() or _PROCESS_KEY
    return URLSafeTimedSerializer(key, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256})
