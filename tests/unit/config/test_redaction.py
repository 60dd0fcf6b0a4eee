"""URLs as shown: passwords replaced by ***, and what is hidden."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from mailroom.config import (
    load_settings,
    redact_url,
    url_secrets,
)
from support.settings_checks import (
    PASSWORD,
    assert_no_password,
)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://ada:Tr0ub4dor@db.example:5432/app",
            "postgresql://ada:***@db.example:5432/app",
        ),
        # Unencoded / ? # @ in the password: the last "@" ends the user information.
        ("postgresql://ada:Tr0/ub4dor@db.example/app", "postgresql://ada:***@db.example/app"),
        ("postgresql://ada:Tr0?ub#4dor@db.example/app", "postgresql://ada:***@db.example/app"),
        ("postgresql://ada:Tr0@ub4dor@db.example/app", "postgresql://ada:***@db.example/app"),
        (
            "postgresql://db.example/app?user=ada&password=Tr0ub4dor",
            "postgresql://db.example/app?user=ada&password=***",
        ),
        ("ada:Tr0ub4dor@db.example/app", "ada:***@db.example/app"),
        # Nothing secret: left alone.
        ("postgresql://ada@db.example/app", "postgresql://ada@db.example/app"),
        ("sqlite:///mailroom.db", "sqlite:///mailroom.db"),
        ("sqlite:////srv/mail@room.db", "sqlite:////srv/mail@room.db"),
        ("", ""),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "hidden"),
    [
        ("postgresql://ada:Tr0@ub4dor@db.example/app", ("Tr0@ub4dor",)),
        ("postgresql://ada:Tr0?ub#4dor@db.example/app", ("Tr0?ub#4dor",)),
        ("postgresql://ada:p1@db/app?pwd=p2&x=1;secret=p3", ("p1", "p2", "p3")),
        ("postgresql://ada@db.example/app", ()),
        ("sqlite:////srv/mail@room.db", ()),
    ],
)
def test_url_secrets_are_what_redact_url_hides(url: str, hidden: tuple[str, ...]) -> None:
    assert url_secrets(url) == hidden
    for secret in hidden:
        assert secret not in redact_url(url)


def test_settings_repr_masks_the_database_password() -> None:
    url = f"postgresql://mailroom:{quote(PASSWORD, safe='')}@db.example/mailroom"
    settings = load_settings(environ={"DATABASE_URL": url})
    assert url == settings.DATABASE_URL  # the value itself is intact, for connecting
    assert "postgresql://mailroom:***@db.example/mailroom" in repr(settings)
    assert_no_password(repr(settings), str(settings))
