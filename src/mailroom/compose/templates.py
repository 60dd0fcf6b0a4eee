"""Templates: a subject plus html and/or text, rendered per recipient.

A template comes from the database (``mailroom_templates``, editable later in the UI) or from
the folders in ``EMAIL_TEMPLATE_DIRS``; a stored one overrides the file of the same name, so
staff can adjust wording without a deploy. In a folder, template ``task_assigned`` is::

    task_assigned.subject.txt   the subject (one line; blanks collapsed)
    task_assigned.html          the HTML body (optional if .txt exists)
    task_assigned.txt           the plain-text body (optional: made from the HTML)

Rendering is Jinja2 in an immutable sandbox (templates may be written by staff through the UI
and previewed: they must not reach settings, the environment, or Python internals, nor spend
the machine: :mod:`mailroom.compose.sandbox` bounds the time and size of every render), with
``StrictUndefined`` so a misspelt variable is an error rather than a silently empty sentence.
The HTML is autoescaped; the subject and text are not (they are not HTML, and "&amp;" in a
subject would be shown as typed). After rendering, the HTML gets its CSS inlined and, when the
template has no text body, a text part is made from it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from sqlalchemy import Engine

from mailroom.compose.css import inline_css
from mailroom.compose.sandbox import BoundedSandbox, RenderBudget, TemplateLimitError
from mailroom.compose.snippets import snippet
from mailroom.compose.text import html_to_text
from mailroom.errors import TemplateError
from mailroom.outbox import notification_queries

__all__ = ["RenderedContent", "Template", "TemplateLibrary"]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*\Z")
_CACHE_SIZE = 256
#: Defaults of ``TEMPLATE_RENDER_TIMEOUT`` and ``TEMPLATE_MAX_OUTPUT_CHARS``.
RENDER_TIMEOUT = 2.0
MAX_OUTPUT_CHARS = 5_000_000


@dataclass(frozen=True, slots=True)
class Template:
    """A template's sources: ``subject`` and at least one of ``html`` and ``text``."""

    name: str
    subject: str
    html: str | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        if self.html is None and self.text is None:
            raise TemplateError(self.name, "needs an html or a text body (or both)")


@dataclass(frozen=True, slots=True)
class RenderedContent:
    """A template rendered for one recipient: ready to go into a Message."""

    subject: str
    text: str
    html: str | None


def _check_name(name: str) -> None:
    if not _NAME.match(name) or ".." in name:
        raise TemplateError(
            name, "a template name is letters, digits, '_', '-', '.' and '/' between folders"
        )


def _environment(
    loader: jinja2.BaseLoader, *, autoescape: bool, globals_: Mapping[str, Any]
) -> BoundedSandbox:
    env = BoundedSandbox(
        loader=loader,
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=True,
    )
    env.add_filter("snippet", snippet)
    env.globals.update(globals_)
    return env


class TemplateLibrary:
    """Finds, compiles (once) and renders templates.

    ``dirs`` are searched in order; ``engine`` is the outbox database holding stored
    templates (``None``: files only). ``globals_`` are functions every template may call, such
    as ``deep_link``. Rendering one part (subject, html or text) may take ``render_timeout``
    seconds and build ``max_output_chars`` characters (``TEMPLATE_RENDER_TIMEOUT``,
    ``TEMPLATE_MAX_OUTPUT_CHARS``).
    """

    def __init__(
        self,
        dirs: Sequence[Path] = (),
        *,
        engine: Engine | None = None,
        globals_: Mapping[str, Callable[..., Any]] | None = None,
        render_timeout: float = RENDER_TIMEOUT,
        max_output_chars: int = MAX_OUTPUT_CHARS,
    ) -> None:
        self.dirs = tuple(Path(d) for d in dirs)
        self.engine = engine
        self.render_timeout = render_timeout
        self.max_output_chars = max_output_chars
        loader = jinja2.FileSystemLoader([str(d) for d in self.dirs])
        extra = dict(globals_ or {})
        self._html_env = _environment(loader, autoescape=True, globals_=extra)
        self._text_env = _environment(loader, autoescape=False, globals_=extra)
        self._compiled: dict[tuple[bool, str], jinja2.Template] = {}
        self._lock = threading.Lock()

    # -- finding --------------------------------------------------------------------------

    def get(self, name: str) -> Template:
        """The template ``name``: the stored one if there is one, else from the folders."""
        _check_name(name)
        if self.engine is not None:
            with self.engine.connect() as connection:
                row = notification_queries.load_template(connection, name)
            if row is not None:
                return Template(name, row["subject"], row["html"], row["text"])
        return self._from_files(name)

    def _from_files(self, name: str) -> Template:
        for folder in self.dirs:
            subject = folder / f"{name}.subject.txt"
            html = folder / f"{name}.html"
            text = folder / f"{name}.txt"
            if subject.is_file() and (html.is_file() or text.is_file()):
                return Template(
                    name,
                    subject.read_text(encoding="utf-8"),
                    html.read_text(encoding="utf-8") if html.is_file() else None,
                    text.read_text(encoding="utf-8") if text.is_file() else None,
                )
        searched = ", ".join(str(d) for d in self.dirs) or "no folders (EMAIL_TEMPLATE_DIRS)"
        raise TemplateError(
            name,
            f"not found: no stored template of that name, and no {name}.subject.txt with "
            f"{name}.html or {name}.txt in {searched}",
        )

    def save(
        self, name: str, *, subject: str, html: str | None = None, text: str | None = None
    ) -> Template:
        """Store a template in the database (overriding a file of the same name).

        It is compiled first, so a template with a syntax error is refused, not stored.
        """
        if self.engine is None:
            raise TemplateError(name, "cannot be stored: this library has no database")
        _check_name(name)
        template = Template(name, subject, html, text)
        self._compile(template, "subject", subject, html_part=False)
        if html is not None:
            self._compile(template, "html", html, html_part=True)
        if text is not None:
            self._compile(template, "text", text, html_part=False)
        with self.engine.begin() as connection:
            notification_queries.save_template(
                connection, name, subject=subject, html=html, text=text, now=time.time()
            )
        return template

    # -- rendering ------------------------------------------------------------------------

    def _compile(
        self, template: Template, part: str, source: str, *, html_part: bool
    ) -> jinja2.Template:
        key = (html_part, source)
        compiled = self._compiled.get(key)
        if compiled is not None:
            return compiled
        env = self._html_env if html_part else self._text_env
        try:
            compiled = env.compile_bounded(source, self.max_output_chars)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                template.name, f"{part}: syntax error on line {exc.lineno}: {exc.message}"
            ) from None
        except TemplateLimitError as exc:
            raise TemplateError(template.name, f"{part}: {exc}") from None
        except (RecursionError, MemoryError, SyntaxError):
            # Jinja's parser and Python's compiler both recurse per level of nesting.
            raise TemplateError(
                template.name, f"{part}: nested too deeply (brackets, filters or tags)"
            ) from None
        except ValueError as exc:
            # An integer literal over Python's 4,300 digits, for one.
            raise TemplateError(template.name, f"{part}: cannot be compiled: {exc}") from None
        with self._lock:
            if len(self._compiled) >= _CACHE_SIZE:
                self._compiled.pop(next(iter(self._compiled)))  # oldest first
            self._compiled[key] = compiled
        return compiled

    def check(self, template: Template) -> None:
        """Compile every part of ``template`` (cached for its rendering): a syntax error is a
        :class:`TemplateError` naming the part and its line, before anyone's mail is made."""
        self._compile(template, "subject", template.subject, html_part=False)
        if template.html is not None:
            self._compile(template, "html", template.html, html_part=True)
        if template.text is not None:
            self._compile(template, "text", template.text, html_part=False)

    def _render_part(
        self, template: Template, part: str, source: str, context: Mapping[str, Any], *, html: bool
    ) -> str:
        compiled = self._compile(template, part, source, html_part=html)
        env = self._html_env if html else self._text_env
        budget = RenderBudget(self.render_timeout, self.max_output_chars)
        try:
            return env.render_bounded(compiled, context, budget)
        except TemplateLimitError as exc:
            raise TemplateError(template.name, f"{part}: {exc}") from None
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(
                template.name, f"{part}: not allowed in a template: {exc}"
            ) from None
        except jinja2.TemplateError as exc:
            # UndefinedError, a missing include, a filter's error: named, never swallowed.
            raise TemplateError(template.name, f"{part}: {exc}") from None
        except RecursionError:
            raise TemplateError(
                template.name,
                f"{part}: calls itself too deeply (a macro, include or recursive loop "
                "that does not end)",
            ) from None
        except OverflowError:
            raise TemplateError(
                template.name, f"{part}: computes a number too large to represent"
            ) from None
        except Exception as exc:
            # 1/0, 'a' + 1: the template's own error. The cause stays chained for a
            # traceback (a global such as deep_link may be at fault).
            raise TemplateError(template.name, f"{part}: {type(exc).__name__}: {exc}") from exc

    def render(self, template: Template | str, context: Mapping[str, Any]) -> RenderedContent:
        """Render a template (or the template of that name) with ``context``."""
        if isinstance(template, str):
            template = self.get(template)
        subject = self._render_part(template, "subject", template.subject, context, html=False)
        # A subject is one header line: line breaks and runs of blanks from the template's
        # layout collapse to one space (a header cannot carry a line break at all).
        subject = " ".join(subject.split())
        html = None
        if template.html is not None:
            html = inline_css(
                self._render_part(template, "html", template.html, context, html=True),
                template=template.name,
            )
            if len(html) > self.max_output_chars:  # each rule's declarations, per element
                raise TemplateError(
                    template.name,
                    f"html: is {len(html):,} characters with its CSS inlined, more than "
                    f"{self.max_output_chars:,} (TEMPLATE_MAX_OUTPUT_CHARS); shorten the CSS "
                    "or the HTML",
                )
        if template.text is not None:
            text = self._render_part(template, "text", template.text, context, html=False)
        else:
            assert html is not None  # Template refuses neither html nor text  # noqa: S101
            text = html_to_text(html, template=template.name)
        return RenderedContent(subject=subject, text=text, html=html)
