"""A template rendered as it is being written: each part (subject, HTML, text) rendered in the
notification sandbox against sample context given as JSON, every error named with its part
and line, and the HTML kept a little while for the preview frame to fetch.

Rendering goes through the service's :class:`~mailroom.compose.templates.TemplateLibrary`,
so a preview runs in the same bounded sandbox as a real notification (no Python internals,
no settings, bounded time and size) and shows what a recipient would get, CSS inlined.

The HTML is never put into the admin page: the page's frame (``sandbox=""``) loads it from
its own URL, answered under a CSP of its own. The frame cannot be given the HTML itself
(``srcdoc`` would inherit the admin page's CSP, which refuses a message's inline styles), so
the rendered HTML waits in :class:`PreviewStore`, in this process's memory, under a random
token bound to the admin who asked, until the frame fetches it.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2

from mailroom.compose.templates import RenderedContent, Template, TemplateLibrary
from mailroom.errors import TemplateError

__all__ = [
    "SAMPLE_CONTEXT",
    "PartError",
    "Preview",
    "PreviewStore",
    "part_error",
    "render_preview",
    "sample_context_json",
]

SAMPLE_CONTEXT: Mapping[str, Any] = {
    # What notify adds to every template's context (compose/personalize.py), so a new
    # template previews without the editor having to know these names first.
    "recipient": {"name": "Ada Lovelace", "email": "ada@example.com"},
    "actor": {"name": "Grace Hopper"},
    "link": "https://app.example.com/tasks/42",
    "unsubscribe_url": "https://mail.example.com/unsubscribe/sample-token",
    "app_name": "Acme",
    "notification_type": "task.assigned",
}

PARTS = ("subject", "html", "text")
_SYNTAX_PREFIX = re.compile(r"^syntax error on line \d+: ")
_TEMPLATE_FILE = "<template>"  # what Jinja names a template compiled from a string


def sample_context_json() -> str:
    """The sample context, as the editor's textarea first holds it."""
    return json.dumps(SAMPLE_CONTEXT, indent=2)


@dataclass(frozen=True, slots=True)
class PartError:
    """What went wrong in one part: ``part`` is ``subject``, ``html``, ``text``, ``context``
    (the sample JSON) or ``name``; ``line`` is 1-based, when known."""

    part: str
    line: int | None
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"part": self.part, "line": self.line, "message": self.message}


@dataclass(frozen=True, slots=True)
class Preview:
    """A template rendered for the preview: what rendered, and what did not."""

    subject: str | None
    html: str | None
    text: str | None
    errors: tuple[PartError, ...]


def part_error(exc: TemplateError) -> PartError:
    """The part, line and message of a :class:`TemplateError` from the library.

    The library says ``html: syntax error on line 3: ...`` for a syntax error but, when a
    render fails, only the message (``html: 'user' is undefined``). The line is then that of
    the template's innermost frame in the traceback of the Jinja error it raised from: Jinja
    rewrites tracebacks so a template's frames carry its own line numbers."""
    message = str(exc).removeprefix(f"{exc.field}: ")
    part = "name"
    for candidate in PARTS:
        if message.startswith(f"{candidate}: "):
            part, message = candidate, message.removeprefix(f"{candidate}: ")
            break
    line = _line_of(exc.__cause__ or exc.__context__)
    return PartError(part, line, _SYNTAX_PREFIX.sub("syntax error: ", message))


def _line_of(error: BaseException | None) -> int | None:
    if isinstance(error, jinja2.TemplateSyntaxError):
        return error.lineno
    if error is None:
        return None
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == _TEMPLATE_FILE and frame.lineno is not None:
            line = frame.lineno
    return line


def read_context(source: str) -> tuple[dict[str, Any], PartError | None]:
    """The sample context of the editor's JSON; an empty one and the error when it is not
    a JSON object."""
    if not source.strip():
        return {}, None
    try:
        value = json.loads(source)
    except json.JSONDecodeError as exc:
        return {}, PartError("context", exc.lineno, f"not valid JSON: {exc.msg}")
    except RecursionError:
        return {}, PartError("context", None, "not valid JSON: nested too deeply")
    if not isinstance(value, dict):
        return {}, PartError("context", 1, "the sample context is a JSON object: { ... }")
    return value, None


def render_preview(
    library: TemplateLibrary,
    name: str,
    *,
    subject: str,
    html: str | None,
    text: str | None,
    context_source: str,
) -> Preview:
    """Each part of the template rendered on its own against the sample context, so an error
    in one part still shows the others (and every part's error at once)."""
    context, context_error = read_context(context_source)
    if context_error is not None:
        # Rendered without its context every part would only say what is undefined.
        return Preview(None, None, None, (context_error,))
    errors: list[PartError] = []
    label = name or "preview"
    if html is None and text is None:
        errors.append(PartError("html", None, "give an HTML body, a text body, or both"))
    rendered_subject = _render(library, Template(label, subject, text=""), context, errors)
    rendered_html = rendered_text = None
    if html is not None:
        from_html = _render(library, Template(label, "", html=html), context, errors)
        if from_html is not None:
            rendered_html = from_html.html
            rendered_text = from_html.text  # made from the HTML, when there is no text body
    if text is not None:
        from_text = _render(library, Template(label, "", text=text), context, errors)
        rendered_text = None if from_text is None else from_text.text
    return Preview(
        subject=None if rendered_subject is None else rendered_subject.subject,
        html=rendered_html,
        text=rendered_text,
        errors=tuple(errors),
    )


def _render(
    library: TemplateLibrary,
    template: Template,
    context: Mapping[str, Any],
    errors: list[PartError],
) -> RenderedContent | None:
    try:
        return library.render(template, context)
    except TemplateError as exc:
        errors.append(part_error(exc))
        return None


_MAX_AGE = 15 * 60.0
_MAX_PER_ADMIN = 8
_MAX_TOTAL_CHARS = 32 * 1024 * 1024


class PreviewStore:
    """Rendered HTML waiting for its preview frame, by random token, for the admin who
    asked only. Bounded: a few previews per admin (the live preview makes one per pause in
    typing), 15 minutes each, 32 Mi characters in all, the oldest dropped first."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[int, float, str]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def put(self, admin_id: int, html: str, now: float | None = None) -> str:
        """Keep ``html`` for ``admin_id``; the token its frame fetches it by."""
        now = time.time() if now is None else now
        token = secrets.token_urlsafe(18)
        with self._lock:
            self._drop_expired(now)
            mine = [key for key, entry in self._entries.items() if entry[0] == admin_id]
            for key in mine[: max(0, len(mine) - _MAX_PER_ADMIN + 1)]:
                self._drop(key)
            while self._entries and self._total + len(html) > _MAX_TOTAL_CHARS:
                self._drop(next(iter(self._entries)))
            self._entries[token] = (admin_id, now, html)
            self._total += len(html)
        return token

    def get(self, admin_id: int, token: str, now: float | None = None) -> str | None:
        """The HTML kept under ``token`` for ``admin_id``; ``None`` if it is someone else's,
        expired or unknown."""
        now = time.time() if now is None else now
        with self._lock:
            entry = self._entries.get(token)
        if entry is None or entry[0] != admin_id or entry[1] < now - _MAX_AGE:
            return None
        return entry[2]

    def _drop_expired(self, now: float) -> None:
        while self._entries:
            oldest = next(iter(self._entries))
            if self._entries[oldest][1] >= now - _MAX_AGE:
                break
            self._drop(oldest)

    def _drop(self, token: str) -> None:
        _admin, _at, html = self._entries.pop(token)
        self._total -= len(html)
