"""The service's registry: the settings file's types over those registered from Python."""

from __future__ import annotations

import pytest

from mailroom.config import NotificationTypeSetting
from mailroom.errors import NotificationError
from mailroom.notifications.registry import NotificationRegistry, service_registry


def test_settings_types_are_offered_with_those_registered_from_python_even_later() -> None:
    python = NotificationRegistry()
    python.register("invoice.paid", template="paid")
    registry = service_registry(
        {"task.assigned": NotificationTypeSetting(template="task", stream="bulk")}, python
    )
    assert registry.get("task.assigned").stream == "bulk"
    assert registry.get("invoice.paid").template == "paid"
    python.register("comment.added")  # after the service started
    assert "comment.added" in registry
    assert [t.name for t in registry] == ["task.assigned", "invoice.paid", "comment.added"]
    with pytest.raises(NotificationError, match=r"registered: comment\.added, invoice\.paid"):
        registry.get("nope")


def test_one_name_declared_in_both_places_differently_fails_at_start() -> None:
    python = NotificationRegistry()
    python.register("task.assigned", template="task", stream="transactional")
    same = {"task.assigned": NotificationTypeSetting(template="task")}
    assert service_registry(same, python).get("task.assigned").template == "task"
    other = {"task.assigned": NotificationTypeSetting(template="task", stream="bulk")}
    with pytest.raises(NotificationError, match="NOTIFICATION_TYPES"):
        service_registry(other, python)


def test_a_bad_type_name_in_the_settings_file_fails_at_start() -> None:
    with pytest.raises(
        NotificationError, match=r"NOTIFICATION_TYPES .*not a notification type name"
    ):
        service_registry({"Task Assigned": NotificationTypeSetting(template="t")}, None)
