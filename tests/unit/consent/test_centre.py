"""Which notification types the preference centre offers a recipient."""

from __future__ import annotations

from mailroom.config import load_settings
from mailroom.consent.centre import OfferedType, offered_types
from mailroom.notifications import NotificationRegistry


def test_the_offered_types_are_the_registrys_the_files_and_the_tokens() -> None:
    registry = NotificationRegistry()
    registry.register("task.assigned", template="t", description="Tasks")
    registry.register("account.reset", template="r", may_opt_out=False)
    settings = load_settings(
        None,
        {},
        NOTIFICATION_TYPES={
            "digest.monthly": {"template": "d", "default_on": False, "description": "Digest"},
            "security.alert": {"template": "s", "may_opt_out": False},
        },
    )
    assert offered_types(registry, settings.NOTIFICATION_TYPES, "legacy.type") == [
        OfferedType("digest.monthly", "Digest", default_on=False),
        OfferedType("legacy.type", "legacy.type", default_on=True),
        OfferedType("task.assigned", "Tasks", default_on=True),
    ]


def test_a_token_for_an_offered_type_adds_nothing_and_no_token_type_is_fine() -> None:
    registry = NotificationRegistry()
    registry.register("task.assigned", template="t", default_on=False)
    offered = [OfferedType("task.assigned", "task.assigned", default_on=False)]
    assert offered_types(registry, {}, "task.assigned") == offered
    assert offered_types(registry, {}, None) == offered
    assert offered_types([], {}, None) == []
