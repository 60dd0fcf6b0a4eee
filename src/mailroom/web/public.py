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

The routes are plain Starlette routes: no dependency solving, and the pixel is a bare ASGI
app answering constant bytes, with nothing on the thread pool — it serves thousands of
requests a second, and its hit goes to the recorder's buffer (an append; never the
database). Reads (the click's link, the preference page) go to the app's ``read_engine``,
which takes no write lock on SQLite, so a busy writer never holds them up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope, Send

from mailroom.config import Settings
from mailroom.consent.centre import OfferedType, offered_types, read_centre, save_centre
from mailroom.consent.scopes import SCOPE_ALL
from mailroom.consent.tokens import TokenClaim
from mailroom.consent.unsubscribe import unsubscribe
from mailroom.errors import InvalidTokenError, SettingsError
from mailroom.tracking.labels import HitKind
from mailroom.tracking.queries import tracked_link
from mailroom.tracking.recorder import USER_AGENT_MAX, EventRecorder, Hit
from mailroom.tracking.tokens import HitClaim, TokenKind, verify_public_token
from mailroom.web.access_log import install_token_filter
from mailroom.web.public_pages import STYLESHEET, check_csrf, make_csrf, not_found, render

__all__ = ["PIXEL_GIF", "PUBLIC_FORM_MAX_BYTES", "install_hit_routes", "public_router"]

logger = logging.getLogger(__name__)

PIXEL_GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
"""A transparent 1x1 GIF (43 bytes)."""
_PIXEL_HEADERS = [
    (b"content-type", b"image/gif"),
    (b"content-length", str(len(PIXEL_GIF)).encode()),
    (b"cache-control", b"no-store, max-age=0"),
    (b"pragma", b"no-cache"),
]
_ONE_CLICK = ("List-Unsubscribe", "One-Click")  # RFC 8058 §3.2

PUBLIC_FORM_MAX_BYTES = 64 * 1024
"""The largest form the public endpoints read. A one-click POST is about 30 bytes and the
preference form a few dozen per notification type; anyone may post here, unauthenticated,
so nothing near ``API_MAX_BODY_BYTES`` is buffered for them (413 beyond)."""


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the hit writer with the app; flush it when the app stops. Keep the tokens out
    of uvicorn's access log."""
    install_token_filter()
    settings: Settings = app.state.settings
    recorder = EventRecorder(
        app.state.engine, settings.TRACKING_IP, read_engine=app.state.read_engine
    )
    recorder.start()
    app.state.event_recorder = recorder
    try:
        yield
    finally:
        await run_in_threadpool(recorder.close)


def public_router() -> APIRouter:
    """The public pages, with the lifespan of the hit writer (the hit routes are the app's
    own: :func:`install_hit_routes`)."""
    router = APIRouter(lifespan=_lifespan, include_in_schema=False, redirect_slashes=False)
    routes: list[tuple[str, Any, list[str]]] = [
        ("/unsubscribe/{token:path}", unsubscribe_page, ["GET", "HEAD"]),
        ("/unsubscribe/{token:path}", unsubscribe_post, ["POST"]),
        ("/preferences/{token:path}", preferences, ["GET", "HEAD", "POST"]),
        ("/static/public/mailroom.css", stylesheet, ["GET", "HEAD"]),
    ]
    for path, endpoint, methods in routes:
        router.add_route(path, endpoint, methods=methods, include_in_schema=False)
    return router


def install_hit_routes(app: FastAPI) -> None:
    """The pixel and the click redirect, as the app's first routes: matched before any
    included router is walked (each costs its own bookkeeping per request). Their hits go
    to the recorder :func:`public_router`'s lifespan starts."""
    # An ASGI app as the endpoint: Starlette's Route calls it as it is (typed for functions).
    pixel = cast(Any, PixelEndpoint())
    app.add_route("/trck/{token:path}", pixel, ["GET", "HEAD"], include_in_schema=False)
    app.add_route("/c/{token:path}", click, ["GET", "HEAD"], include_in_schema=False)


def _settings(scope: Scope) -> Settings:
    settings: Settings = scope["app"].state.settings
    return settings


def _unsubscribe_claim(request: Request, token: str) -> TokenClaim | None:
    try:
        return verify_public_token(_settings(request.scope), TokenKind.UNSUBSCRIBE, token)
    except InvalidTokenError:
        return None
    except SettingsError:
        logger.warning("a public link was followed, but SECRET_KEY is not set")
        return None


def _hit_claim(settings: Settings, kind: TokenKind, token: str) -> HitClaim | None:
    try:
        if kind is TokenKind.OPEN:
            return verify_public_token(settings, TokenKind.OPEN, token)
        return verify_public_token(settings, TokenKind.CLICK, token)
    except InvalidTokenError:
        return None
    except SettingsError:
        logger.warning("a tracking link was followed, but SECRET_KEY is not set")
        return None


def _offered(request: Request, token_type: str | None) -> list[OfferedType]:
    settings = _settings(request.scope)
    registry = request.app.state.notifier.registry
    return offered_types(registry, settings.NOTIFICATION_TYPES, token_type)


def _what(request: Request, claim: TokenClaim) -> str:
    """What the token's scope stops, in words."""
    if claim.scope == SCOPE_ALL:
        return "any email"
    kind, _, name = claim.scope.partition(":")
    if kind == "list":
        return f"the mailing list {name}"
    label = next((o.description for o in _offered(request, name) if o.name == name), name)
    return f"“{label}” emails"


def _page_context(request: Request, token: str, claim: TokenClaim) -> dict[str, Any]:
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return {
        "recipient": claim.recipient,
        "what": _what(request, claim),
        "preferences_url": f"{root}/preferences/{token}",
    }


async def unsubscribe_page(request: Request) -> Response:
    """The page a person sees from the link in a message's footer; changes nothing."""
    token = request.path_params["token"]
    claim = _unsubscribe_claim(request, token)
    if claim is None:
        return not_found(request)
    return render(request, "unsubscribe.html", _page_context(request, token, claim))


async def unsubscribe_post(request: Request) -> Response:
    """One-click (RFC 8058) and the page's confirm button: unsubscribe, answer 200."""
    token = request.path_params["token"]
    claim = _unsubscribe_claim(request, token)
    if claim is None:
        return not_found(request)
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
    settings, engine = _settings(request.scope), request.app.state.engine
    try:
        await run_in_threadpool(unsubscribe, engine, settings, token, source=source)
    except InvalidTokenError:
        return not_found(request)  # expired between the two checks
    return render(request, "unsubscribed.html", _page_context(request, token, claim))


async def preferences(request: Request) -> Response:
    """The preference centre: every type the recipient may turn off, and "stop everything"."""
    token = request.path_params["token"]
    claim = _unsubscribe_claim(request, token)
    if claim is None:
        return not_found(request)
    settings = _settings(request.scope)
    engine, reader = request.app.state.engine, request.app.state.read_engine
    token_type = claim.scope.removeprefix("type:") if claim.scope.startswith("type:") else None
    offered = _offered(request, token_type)
    notice, status = None, 200
    if request.method == "POST":
        form = await _form(request)
        if form.get("token") != token or not check_csrf(settings, token, form.get("csrf")):
            notice, status = "This page was open too long; nothing was saved. Try again.", 403
            state = await run_in_threadpool(read_centre, reader, claim, offered)
        else:
            wanted = {str(name): True for name in form.getlist("type")}
            state = await run_in_threadpool(
                lambda: save_centre(
                    engine, claim, offered, wanted, stop_all=bool(form.get("stop_all"))
                )
            )
            notice = "Saved."
    else:
        state = await run_in_threadpool(read_centre, reader, claim, offered)
    context = {"state": state, "token": token, "csrf": make_csrf(settings, token), "notice": notice}
    return render(request, "preferences.html", context, status=status)


class PixelEndpoint:
    """The open pixel, as a bare ASGI app: the image whatever happens; a valid token's hit is
    buffered. Constant bytes, no thread pool, no database."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            claim = _hit_claim(_settings(scope), TokenKind.OPEN, scope["path_params"]["token"])
            if claim is not None:
                _record(scope, HitKind.OPEN, claim)
        except Exception:  # the image is answered whatever went wrong
            logger.exception("could not record an open")
        await send({"type": "http.response.start", "status": 200, "headers": _PIXEL_HEADERS})
        body = b"" if scope["method"] == "HEAD" else PIXEL_GIF
        await send({"type": "http.response.body", "body": body})


async def click(request: Request) -> Response:
    """The click redirect, to the message's own link ``link_index`` and nowhere else."""
    claim = _hit_claim(_settings(request.scope), TokenKind.CLICK, request.path_params["token"])
    if claim is None or claim.link_index is None:
        return not_found(request)
    url = await run_in_threadpool(tracked_link, request.app.state.read_engine, claim)
    if url is None:
        return not_found(request)
    _record(request.scope, HitKind.CLICK, claim)
    return RedirectResponse(
        url,
        status_code=302,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


async def stylesheet(_request: Request) -> Response:
    return Response(
        STYLESHEET, media_type="text/css", headers={"Cache-Control": "public, max-age=86400"}
    )


def _record(scope: Scope, kind: HitKind, claim: HitClaim) -> None:
    recorder: EventRecorder | None = getattr(scope["app"].state, "event_recorder", None)
    if recorder is None:
        logger.warning("a %s hit was not recorded: the app was started without its lifespan", kind)
        return
    client = scope.get("client")
    recorder.add(
        Hit(
            kind=kind,
            claim=claim,
            at=time.time(),
            method=scope["method"],
            user_agent=_user_agent(scope),
            ip=client[0] if client else None,
        )
    )


def _user_agent(scope: Scope) -> str:
    """The request's ``User-Agent``, cut to what is kept before it is even decoded: a client
    may send megabytes of it."""
    for name, value in scope["headers"]:
        if name == b"user-agent":
            return str(value[:USER_AGENT_MAX].decode("latin-1"))
    return ""


def _too_large() -> HTTPException:
    return HTTPException(
        413,
        f"the form is larger than {PUBLIC_FORM_MAX_BYTES} bytes",
        headers={"Connection": "close"},  # the rest of the body is not read
    )


def _limited(receive: Receive) -> Receive:
    """``receive``, raising 413 once the body passes :data:`PUBLIC_FORM_MAX_BYTES` (a chunked
    body has no ``Content-Length`` to refuse it by)."""
    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > PUBLIC_FORM_MAX_BYTES:
                raise _too_large()
        return message

    return limited_receive


async def _form(request: Request) -> FormData | _EmptyForm:
    """The posted form, either encoding; an unreadable body is an empty form, a body over the
    limit (ours, or the app's ``API_MAX_BODY_BYTES``) a 413."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > PUBLIC_FORM_MAX_BYTES:
        raise _too_large()
    limited = Request(request.scope, _limited(request.receive))
    try:
        return await limited.form(max_files=0, max_fields=200)
    except HTTPException:  # 413: the body limit's, or ours
        raise
    except Exception:  # a malformed body (multipart or not) unsubscribes nobody
        logger.info("an unreadable form was posted to a public endpoint")
        return _EmptyForm()


class _EmptyForm(dict[str, Any]):
    def getlist(self, _key: str) -> list[Any]:
        return []
