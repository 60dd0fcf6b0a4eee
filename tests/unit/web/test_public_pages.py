"""The preference form's CSRF token and the types the preference centre offers."""

from __future__ import annotations

import time
from typing import Any
from unittest import mock

from mailroom.config import Settings, load_settings
from mailroom.consent.centre import OfferedType
from mailroom.notifications import NotificationRegistry
from mailroom.web.public_pages import CSRF_MAX_AGE, check_csrf, make_csrf, offered_types

SECRET = "public-pages-test-secret-0123456789-abcdef"


def settings_for(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"SECRET_KEY": SECRET, **overrides}
    return load_settings(None, {}, **values)


def test_a_csrf_token_is_bound_to_its_page_token_and_short_lived() -> None:
    settings = settings_for()
    csrf = make_csrf(settings, "page-token-1")
    assert check_csrf(settings, "page-token-1", csrf)
    assert not check_csrf(settings, "page-token-2", csrf)
    assert not check_csrf(settings_for(SECRET_KEY=SECRET + "x"), "page-token-1", csrf)
    for bad in (None, "", "forged", csrf[:-1] + ("A" if csrf[-1] != "A" else "B"), ["x"]):
        assert not check_csrf(settings, "page-token-1", bad)
    later = time.time() + CSRF_MAX_AGE + 5
    with mock.patch("time.time", return_value=later):
        assert not check_csrf(settings, "page-token-1", csrf)


def test_the_offered_types_are_the_registrys_the_files_and_the_tokens() -> None:
    registry = NotificationRegistry()
    registry.register("task.assigned", template="t", description="Tasks")
    registry.register("account.reset", template="r", may_opt_out=False)
    settings = settings_for(
        NOTIFICATION_TYPES={
            "digest.monthly": {"template": "d", "default_on": False, "description": "Digest"},
            "security.alert": {"template": "s", "may_opt_out": False},
        }
    )
    assert offered_types(settings, registry, "legacy.type") == [
        OfferedType("digest.monthly", "Digest", default_on=False),
        OfferedType("legacy.type", "legacy.type", default_on=True),
        OfferedType("task.assigned", "Tasks", default_on=True),
    ]
