"""The notification types an app declares: their names, templates, streams and whether people
may turn them off; the default registry behind :func:`register_notification_type`."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from mailroom.compose.templates import Template
from mailroom.config import NotificationTypeSetting
from mailroom.errors import NotificationError

__all__ = [
    "NotificationRegistry",
    "NotificationType",
    "default_registry",
    "register_notification_type",
    "service_registry",
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
    """The notification types an app has registered, by name.

    With a ``parent``, a name not registered here is looked up there, at every call: the
    service declares the settings file's types in a registry of its own whose parent is the
    default registry, so types registered from Python, even later, are offered too.
    """

    def __init__(self, parent: NotificationRegistry | None = None) -> None:
        self._types: dict[str, NotificationType] = {}
        self._lock = threading.Lock()
        self._parent = parent

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
            if self._parent is not None and name in self._parent:
                return self._parent.get(name)
            known = ", ".join(sorted(t.name for t in self)) or "none yet"
            raise NotificationError(
                f"unknown notification type {name!r}; registered: {known} "
                "(register it with mailroom.register_notification_type)"
            ) from None

    def __iter__(self) -> Iterator[NotificationType]:
        """Every type, this registry's first, then its parent's not shadowed by them."""
        own = list(self._types.values())
        inherited = [t for t in self._parent or () if t.name not in self._types]
        return iter(own + inherited)

    def __contains__(self, name: object) -> bool:
        return name in self._types or (self._parent is not None and name in self._parent)


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


def service_registry(
    declared: Mapping[str, NotificationTypeSetting],
    parent: NotificationRegistry | None = default_registry,
) -> NotificationRegistry:
    """The types the settings file declares (``[notification_types."NAME"]``), in a registry
    of their own over ``parent`` (the types registered from Python). A name declared in both
    with other settings is a :class:`NotificationError` naming it, at start, not at first use."""
    registry = NotificationRegistry(parent)
    for name, setting in declared.items():
        try:
            declared_type = registry.register(
                name,
                template=setting.template,
                stream=setting.stream,
                default_on=setting.default_on,
                may_opt_out=setting.may_opt_out,
                description=setting.description,
            )
        except NotificationError as exc:
            where = f'NOTIFICATION_TYPES (the settings file\'s [notification_types."{name}"])'
            raise NotificationError(f"{where}: {exc}") from None
        if parent is not None and name in parent and parent.get(name) != declared_type:
            raise NotificationError(
                f"{name}: declared in the settings file (NOTIFICATION_TYPES) and registered "
                "from Python with other settings; keep one declaration"
            )
    return registry
