"""Value parsers: address lists, paths, rates."""

from __future__ import annotations

from pathlib import Path

from mailroom.config import (
    load_settings,
)
from support.settings_checks import (
    WriteFile,
)


def test_address_lists_from_environment_file_and_django_pairs(write: WriteFile) -> None:
    env = {"ADMINS": 'Ada Lovelace <ada@example.com>, "Hopper, Grace" <grace@example.com>'}
    assert load_settings(environ=env).ADMINS == (
        "Ada Lovelace <ada@example.com>",
        "Hopper, Grace <grace@example.com>",
    )
    path = write(
        "c.toml",
        'ADMINS = [["Ada", "ada@example.com"], "ops@example.com"]\n'
        'EMAIL_FALLBACK_TO = ["team@example.com"]\nEMAIL_TEMPLATE_DIRS = ["a", "b"]\n',
    )
    settings = load_settings(config_path=path, environ={"EMAIL_TEMPLATE_DIRS": "x:y"})
    assert settings.ADMINS == ("Ada <ada@example.com>", "ops@example.com")
    assert settings.EMAIL_FALLBACK_TO == ("team@example.com",)
    assert (Path("x"), Path("y")) == settings.EMAIL_TEMPLATE_DIRS
