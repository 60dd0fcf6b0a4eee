"""The public endpoints: no login, a signed token in the path is the credential.

- ``GET /unsubscribe/{token}``: what will stop, and a confirm button. Changes nothing: mail
  scanners fetch every link of a message.
- ``POST /unsubscribe/{token}``: RFC 8058 one-click (``List-Unsubscribe=One-Click``, as
  ``application/x-www-form-urlencoded`` or ``multipart/form-data``; no cookie; 200, no
  redirect; idempotent), and the page's confirm button (``confirm=yes``). The consent log
  says which (source ``one_click`` or ``link``) and when.
- ``GET|POST /preferences/{token}``: the preference centre (the unsubscribe token opens it).
- ``GET|HEAD /trck/{token}``: the open pixel — always the image, always 200.
- ``GET|HEAD /c/{token}``: the click redirect, only ever to a URL stored with the message.

Every token goes through :func:`~mailroom.tracking.tokens.verify_public_token`; every bad,
expired or altered one gets :func:`~mailroom.web.public_pages.not_found` — the same bytes and
headers on every endpoint (the pixel excepted, which answers with its image). The token is
taken as the rest of the path, so that no change to it (a ``/`` included) reaches a different
route with a different 404.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from mailroom.config import Settings
from mailroom.consent.centre import read_centre, save_centre
from mailroom.consent.scopes import SCOPE_ALL
from mailroom.consent.tokens import TokenClaim
from mailroom.consent.unsubscribe import unsubscribe
from mailroom.errors import InvalidTokenError, SettingsError
from mailroom.notifications.registry import NotificationRegistry
from mailroom.tracking.labels import HitKind
from mailroom.tracking.queries import tracked_link
from mailroom.tracking.recorder import EventRecorder, Hit
from mailroom.tracking.tokens import HitClaim, TokenKind, verify_public_token
from mailroom.web.public_pages import (
    STYLESHEET,
    check_csrf,
    make_csrf,
    not_found,
    offered_types,
    render,
)

__all__ = ["PIXEL_GIF", "public_router"]

logger = logging.getLogger(__name__)

PIXEL_GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
"""A transparent 1x1 GIF (43 bytes)."""
_PIXEL_HEADERS = {"Cache-Control": "no-store, max-age=0", "Pragma": "no-cache"}
_ONE_CLICK = ("List-Unsubscribe", "One-Click")  # RFC 8058 §3.2


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the hit writer with the app; flush it when the app stops."""
    settings: Settings = app.state.settings
    recorder = EventRecorder(app.state.engine, settings.TRACKING_IP)
    recorder.start()
    app.state.event_recorder = recorder
    try:
        yield
    finally:
        await run_in_threadpool(recorder.close)


def public_router() -> APIRouter:
    """The public endpoints, with the lifespan of their hit writer."""
    router = APIRouter(lifespan=_lifespan, include_in_schema=False)
    router.add_api_route("/unsubscribe/{token:path}", unsubscribe_page, methods=["GET", "HEAD"])
    router.add_api_route("/unsubscribe/{token:path}", unsubscribe_post, methods=["POST"])
    router.add_api_route("/preferences/{token:path}", preferences, methods=["GET", "HEAD", "POST"])
    router.add_api_route("/trck/{token:path}", pixel, methods=["GET", "HEAD"])
    router.add_api_route("/c/{token:path}", click, methods=["GET", "HEAD"])
    router.add_api_route("/static/public/mailroom.css", stylesheet, methods=["GET", "HEAD"])
    return router


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _unsubscribe_claim(request: Request, token: str) -> TokenClaim | None:
    try:
        return verify_public_token(_settings(request), TokenKind.UNSUBSCRIBE, token)
    except InvalidTokenError:
        return None
    except SettingsError:
        logger.warning("a public link was followed, but SECRET_KEY is not set")
        return None


def _hit_claim(request: Request, kind: TokenKind, token: str) -> HitClaim | None:
    try:
        if kind is TokenKind.OPEN:
            return verify_public_token(_settings(request), TokenKind.OPEN, token)
        return verify_public_token(_settings(request), TokenKind.CLICK, token)
    except InvalidTokenError:
        return None
    except SettingsError:
        logger.warning("a tracking link was followed, but SECRET_KEY is not set")
        return None


def _what(request: Request, claim: TokenClaim) -> str:
    """What the token's scope stops, in words."""
    if claim.scope == SCOPE_ALL:
        return "any email"
    kind, _, name = claim.scope.partition(":")
    if kind == "list":
        return f"the mailing list {name}"
    offered = offered_types(_settings(request), _registry(request), name)
    label = next((o.description for o in offered if o.name == name), name)
    return f"“{label}” emails"


def _registry(request: Request) -> NotificationRegistry | None:
    """The app's registry, if whoever built the app put one there; else the default one."""
    registry: NotificationRegistry | None = getattr(
        request.app.state, "notification_registry", None
    )
    return registry


def _page_context(request: Request, token: str, claim: TokenClaim) -> dict[str, Any]:
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return {
        "recipient": claim.recipient,
        "what": _what(request, claim),
        "preferences_url": f"{root}/preferences/{token}",
    }


async def unsubscribe_page(request: Request, token: str) -> Response:
    """The page a person sees from the link in a message's footer; changes nothing."""
    claim = _unsubscribe_claim(request, token)
    if claim is None:
        return not_found()
    return render(request, "unsubscribe.html", _page_context(request, token, claim))


async def unsubscribe_post(request: Request, token: str) -> Response:
    """One-click (RFC 8058) and the page's confirm button: unsubscribe, answer 200."""
    claim = _unsubscribe_claim(request, token)
    if claim is None:
        return not_found()
    form = await _form(request)
    if form.get(_ONE_CLICK[0]) == _ONE_CLICK[1]:
        source = "one_click"
    elif form.get("confirm"):
        source = "link"
    else:
        context = {
            "reason": "The request did not say to unsubscribe (List-Unsubscribe=One-Click).",
            "retry_url": str(request.url.path),
        }
        return render(request, "bad_request.html", context, status=400)
    settings, engine = _settings(request), request.app.state.engine
    try:
        await run_in_threadpool(unsubscribe, engine, settings, token, source=source)
    except InvalidTokenError:
        return not_found()  # expired between the two checks
    return render(request, "unsubscribed.html", _page_context(request, token, claim))


async def preferences(request: Request, token: str) -> Response:
    """The preference centre: every type the recipient may turn off, and "stop everything"."""
    claim = _unsubscribe_claim(request, token)
    if claim is None:
        return not_found()
    settings, engine = _settings(request), request.app.state.engine
    token_type = claim.scope.removeprefix("type:") if claim.scope.startswith("type:") else None
    offered = offered_types(settings, _registry(request), token_type)
    notice, status = None, 200
    if request.method == "POST":
        form = await _form(request)
        if form.get("token") != token or not check_csrf(settings, token, form.get("csrf")):
            notice, status = "This page was open too long; nothing was saved. Try again.", 403
            state = await run_in_threadpool(read_centre, engine, claim, offered)
        else:
            wanted = {str(name): True for name in form.getlist("type")}
            state = await run_in_threadpool(
                lambda: save_centre(
                    engine, claim, offered, wanted, stop_all=bool(form.get("stop_all"))
                )
            )
            notice = "Saved."
    else:
        state = await run_in_threadpool(read_centre, engine, claim, offered)
    context = {"state": state, "token": token, "csrf": make_csrf(settings, token), "notice": notice}
    return render(request, "preferences.html", context, status=status)


async def pixel(request: Request, token: str) -> Response:
    """The open pixel: the image whatever happens; a valid token's hit is buffered."""
    try:
        claim = _hit_claim(request, TokenKind.OPEN, token)
        if claim is not None:
            _record(request, HitKind.OPEN, claim)
    except Exception:  # the image is answered whatever went wrong
        logger.exception("could not record an open")
    return Response(PIXEL_GIF, media_type="image/gif", headers=_PIXEL_HEADERS)


async def click(request: Request, token: str) -> Response:
    """The click redirect, to the message's own link ``link_index`` and nowhere else."""
    claim = _hit_claim(request, TokenKind.CLICK, token)
    if claim is None or claim.link_index is None:
        return not_found()
    url = await run_in_threadpool(tracked_link, request.app.state.engine, claim)
    if url is None:
        return not_found()
    _record(request, HitKind.CLICK, claim)
    return RedirectResponse(
        url,
        status_code=302,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


async def stylesheet() -> Response:
    return Response(
        STYLESHEET, media_type="text/css", headers={"Cache-Control": "public, max-age=86400"}
    )


def _record(request: Request, kind: HitKind, claim: HitClaim) -> None:
    recorder: EventRecorder | None = getattr(request.app.state, "event_recorder", None)
    if recorder is None:
        logger.warning("a %s hit was not recorded: the app was started without its lifespan", kind)
        return
    recorder.add(
        Hit(
            kind=kind,
            claim=claim,
            at=time.time(),
            method=request.method,
            user_agent=request.headers.get("user-agent", ""),
            ip=request.client.host if request.client else None,
        )
    )


async def _form(request: Request) -> Any:
    """The posted form, either encoding; an unreadable body is an empty form."""
    try:
        return await request.form(max_files=0, max_fields=200)
    except Exception:  # a malformed body (multipart or not) unsubscribes nobody
        logger.info("an unreadable form was posted to a public endpoint")
        return _EmptyForm()


class _EmptyForm(dict[str, Any]):
    def getlist(self, _key: str) -> list[Any]:
        return []
