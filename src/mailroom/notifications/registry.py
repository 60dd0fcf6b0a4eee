"""The notification types an app declares: their names, templates, streams and whether people
may turn them off; the default registry behind :func:`register_notification_type`."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from mailroom.compose.templates import Template
from mailroom.errors import NotificationError

__all__ = [
    "NotificationRegistry",
    "NotificationType",
    "default_registry",
    "register_notification_type",
]

_TYPE_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*(?:\.[a-z0-9_\-]+)*\Z")


@dataclass(frozen=True, slots=True)
class NotificationType:
    """A kind of notification the app sends.

    ``default_on``: whether email is on for recipients who never chose. ``may_opt_out``:
    whether recipients may turn it off (a password reset may not); such mail carries no
    ``List-Unsubscribe`` and ignores preferences and ``unsubscribed`` suppressions.
    """

    name: str
    template: str | Template
    stream: str = "transactional"
    default_on: bool = True
    may_opt_out: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if not _TYPE_NAME.match(self.name) or len(self.name) > 100:
            raise NotificationError(
                f"{self.name!r} is not a notification type name: lower-case words separated "
                "by dots, e.g. 'task.assigned' (at most 100 characters)"
            )
        if not self.may_opt_out and not self.default_on:
            raise NotificationError(
                f"{self.name}: a type recipients may not turn off must be on by default "
                "(default_on=True), or nobody would ever receive it"
            )

    @property
    def label(self) -> str:
        return self.description or self.name


class NotificationRegistry:
    """The notification types an app has registered, by name."""

    def __init__(self) -> None:
        self._types: dict[str, NotificationType] = {}
        self._lock = threading.Lock()

    def register(
        self,
        name: str,
        *,
        template: str | Template | None = None,
        stream: str = "transactional",
        default_on: bool = True,
        may_opt_out: bool = True,
        description: str = "",
    ) -> NotificationType:
        """Declare a type. ``template`` defaults to the type's name.

        Registering the same declaration again is harmless (a module imported twice); a
        different one under a registered name is an error.
        """
        declared = NotificationType(
            name, template or name, stream, default_on, may_opt_out, description
        )
        with self._lock:
            existing = self._types.get(name)
            if existing is not None and existing != declared:
                raise NotificationError(f"{name}: already registered with other settings")
            self._types[name] = declared
        return declared

    def get(self, name: str) -> NotificationType:
        """The type ``name``, or a :class:`NotificationError` listing the registered ones."""
        try:
            return self._types[name]
        except KeyError:
            known = ", ".join(sorted(self._types)) or "none yet"
            raise NotificationError(
                f"unknown notification type {name!r}; registered: {known} "
                "(register it with mailroom.register_notification_type)"
            ) from None

    def __iter__(self) -> Iterator[NotificationType]:
        return iter(list(self._types.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._types


default_registry = NotificationRegistry()
"""The registry behind :func:`register_notification_type` and :func:`notify`."""


def register_notification_type(
    name: str,
    *,
    template: str | Template | None = None,
    stream: str = "transactional",
    default_on: bool = True,
    may_opt_out: bool = True,
    description: str = "",
) -> NotificationType:
    """Declare a notification type in the default registry. See :class:`NotificationType`."""
    return default_registry.register(
        name,
        template=template,
        stream=stream,
        default_on=default_on,
        may_opt_out=may_opt_out,
        description=description,
    )
