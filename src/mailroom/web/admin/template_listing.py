"""What the templates page lists: the templates of the folders in ``EMAIL_TEMPLATE_DIRS``,
those stored in the database (which override a file of the same name), and the notification
types the service offers with what they did over the last seven days.

A folder holds template ``task_assigned`` as ``task_assigned.subject.txt`` with
``task_assigned.html`` and/or ``task_assigned.txt`` (see :mod:`mailroom.compose.templates`);
the first folder holding a name wins, as when the library looks it up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from mailroom.compose.templates import Template, TemplateLibrary
from mailroom.errors import TemplateError
from mailroom.notifications.registry import NotificationType
from mailroom.outbox import notification_queries
from mailroom.outbox.vocabulary import NotificationOutcome

__all__ = [
    "WEEK",
    "FileTemplate",
    "StoredTemplate",
    "TypeRow",
    "file_template",
    "file_templates",
    "notification_type_rows",
    "stored_templates",
]

WEEK = 7 * 86400.0
_SUBJECT_SUFFIX = ".subject.txt"
_MAX_FILES = 5000  # a mistaken folder (a home directory) is listed in part, not walked whole


@dataclass(frozen=True, slots=True)
class FileTemplate:
    """A template in a folder: its name, the folder, its parts, and whether a stored
    template of that name overrides it."""

    name: str
    folder: Path
    has_html: bool
    has_text: bool
    overridden: bool


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    """A template in the database; ``overrides`` says whether a file of its name exists."""

    name: str
    subject: str
    has_html: bool
    has_text: bool
    updated_at: float
    overrides: bool


@dataclass(frozen=True, slots=True)
class TypeRow:
    """A notification type with where it was declared and its last week's counts."""

    kind: NotificationType
    template_name: str
    template_source: str  # "stored", "file", "inline" (a Template object) or "missing"
    declared_in: str  # "settings file" or "Python"
    sent: int
    skipped: int
    suppressed: int


def _files_in(folder: Path) -> Iterable[tuple[str, Path]]:
    try:
        found = sorted(folder.rglob(f"*{_SUBJECT_SUFFIX}"))[:_MAX_FILES]
    except OSError:
        return ()
    return (
        (path.relative_to(folder).as_posix().removesuffix(_SUBJECT_SUFFIX), path) for path in found
    )


def file_templates(folders: Sequence[Path], stored: Iterable[str]) -> list[FileTemplate]:
    """The templates of ``folders`` by name, the first folder's where two hold one name."""
    stored_names = set(stored)
    found: dict[str, FileTemplate] = {}
    for folder in folders:
        for name, subject in _files_in(folder):
            if name in found:
                continue
            base = subject.with_name(subject.name.removesuffix(_SUBJECT_SUFFIX))
            has_html = base.with_name(base.name + ".html").is_file()
            has_text = base.with_name(base.name + ".txt").is_file()
            if has_html or has_text:
                found[name] = FileTemplate(
                    name, folder, has_html, has_text, overridden=name in stored_names
                )
    return [found[name] for name in sorted(found)]


def file_template(folders: Sequence[Path], name: str) -> Template | None:
    """The file template ``name`` (what a stored one of that name overrides), or ``None``."""
    try:
        # A library without a database reads the folders only.
        return TemplateLibrary(folders).get(name)
    except TemplateError:
        return None


def stored_templates(
    rows: Iterable[Mapping[str, Any]], file_names: Iterable[str]
) -> list[StoredTemplate]:
    """The database's templates (rows of :func:`~notification_queries.list_templates`)."""
    files = set(file_names)
    return [
        StoredTemplate(
            name=row["name"],
            subject=row["subject"],
            has_html=row["html"] is not None,
            has_text=row["text"] is not None,
            updated_at=row["updated_at"],
            overrides=row["name"] in files,
        )
        for row in rows
    ]


def notification_type_rows(
    connection: Connection,
    types: Iterable[NotificationType],
    *,
    from_settings: Iterable[str],
    stored: Iterable[str],
    files: Iterable[str],
    now: float,
) -> list[TypeRow]:
    """Each type with its template's source and the notification log's counts over the last
    seven days: ``sent`` recipients got a message queued, ``skipped`` did not by choice or for
    lack of an address (opted out, the actor...), ``suppressed`` were on the list."""
    counts = notification_queries.outcome_counts(connection, since=now - WEEK)
    settings_names, stored_names, file_names = set(from_settings), set(stored), set(files)
    rows = []
    for kind in sorted(types, key=lambda t: t.name):
        if isinstance(kind.template, str):
            template_name = kind.template
            if template_name in stored_names:
                source = "stored"
            elif template_name in file_names:
                source = "file"
            else:
                source = "missing"
        else:
            template_name, source = kind.template.name, "inline"
        rows.append(
            TypeRow(
                kind=kind,
                template_name=template_name,
                template_source=source,
                declared_in="settings file" if kind.name in settings_names else "Python",
                sent=counts.get((kind.name, NotificationOutcome.QUEUED.value), 0),
                skipped=counts.get((kind.name, NotificationOutcome.SKIPPED.value), 0),
                suppressed=counts.get((kind.name, NotificationOutcome.SUPPRESSED.value), 0),
            )
        )
    return rows
