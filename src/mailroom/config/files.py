"""The two files settings come from: the settings file (TOML, shareable) and the secrets file
(``key = value`` lines, the operator's alone); every error names the file by its absolute path
and never quotes a line that may hold the password."""

from __future__ import annotations

import configparser
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mailroom.config.email_url import url_has_password
from mailroom.config.model import SETTING_NAMES
from mailroom.config.parsers import suggest
from mailroom.config.report import Problems
from mailroom.errors import SettingsError

__all__ = [
    "DEFAULT_SETTINGS_FILE",
    "canonical_keys",
    "locate_secrets_file",
    "password_warning",
    "read_secrets_file",
    "read_settings_file",
    "settings_file_path",
]

DEFAULT_SETTINGS_FILE = "mailroom.toml"

# Keys a secrets file may hold, and the setting each one sets. ``email_password`` is the name
# operators of Zulip-style deployments already use.
_SECRETS_KEYS = {
    "email_password": "EMAIL_HOST_PASSWORD",
    "email_host_password": "EMAIL_HOST_PASSWORD",
    "secret_key": "SECRET_KEY",
    "admin_password": "MAILROOM_ADMIN_PASSWORD",
}


def settings_file_path(
    config_path: str | os.PathLike[str] | None, env: Mapping[str, str]
) -> tuple[Path, bool]:
    """The settings file (``--config``, else ``MAILROOM_CONFIG``, else ``mailroom.toml``) and
    whether it must exist: only the one found by default may be absent."""
    path = config_path or env.get("MAILROOM_CONFIG")
    return (Path(path), True) if path else (Path(DEFAULT_SETTINGS_FILE), False)


def canonical_keys(raw: Mapping[str, Any], where: str, problems: Problems) -> dict[str, Any]:
    """Upper-case the keys of a settings file and refuse the ones Mailroom does not know."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.upper()
        if name not in SETTING_NAMES and name != "EMAIL_URL":
            problems.add(
                SettingsError(name, f"unknown setting in {where}{suggest(name, SETTING_NAMES)}")
            )
            continue
        out[name] = value
    return out


def _read_text(path: Path, setting: str, what: str) -> str:
    """The file's text, or a :class:`SettingsError` naming the file by its absolute path."""
    shown = path.absolute()
    problem = ""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problem = f"{what} {shown} does not exist"
    except IsADirectoryError:
        problem = f"{what} {shown} is a folder, not a file"
    except OSError as exc:
        problem = f"cannot read {what} {shown}: {exc.strerror}"
    if problem:
        raise SettingsError(setting, problem)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problem = f"{what} {shown} is not UTF-8 text (line {line}); save it as UTF-8"
    raise SettingsError(setting, problem)


def read_settings_file(path: Path, problems: Problems) -> dict[str, Any]:
    """The settings in the TOML file at ``path``, keys upper-cased (see :func:`canonical_keys`)."""
    shown = path.absolute()
    text = _read_text(path, "MAILROOM_CONFIG", "settings file")
    problem = ""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message says what is wrong and where: "... (at line 3, column 9)".
        problem = f"settings file {shown} is not valid TOML: {exc}"
    if problem:
        raise SettingsError("MAILROOM_CONFIG", problem)
    # Allow the settings to sit under a [mailroom] table, as in a shared pyproject-style file.
    if set(raw) == {"mailroom"} and isinstance(raw["mailroom"], dict):
        raw = raw["mailroom"]
    return canonical_keys(raw, str(shown), problems)


def read_secrets_file(path: Path) -> dict[str, Any]:
    """The settings in the secrets file at ``path``, by setting name."""
    shown = path.absolute()
    text = _read_text(path, "SECRETS_FILE", "secrets file")
    parser = configparser.ConfigParser(interpolation=None)
    if not text.lstrip().startswith("["):
        text = "[secrets]\n" + text
    try:
        parser.read_string(text, source=str(shown))
    except configparser.Error as exc:
        # The parser's message quotes the offending line, which may be the password itself.
        raise SettingsError(
            "SECRETS_FILE", f"{shown} is not a 'key = value' file ({type(exc).__name__})"
        ) from None
    out: dict[str, Any] = {}
    for section in parser.sections():
        for key, value in parser.items(section):
            setting = _SECRETS_KEYS.get(key.lower())
            if setting is None:
                # The key is not quoted: a file holding just a password that contains "=" or
                # ":" parses as "key = value", and the "key" is then part of the password.
                known = list(_SECRETS_KEYS)
                raise SettingsError(
                    "SECRETS_FILE",
                    f"unknown key in secrets file {shown}; the keys it may hold are "
                    f"{' and '.join(known)}{suggest(key, known).lower()}",
                )
            out[setting] = value.strip().strip("\"'")
    return out


def locate_secrets_file(
    env: Mapping[str, str],
    overrides: Mapping[str, Any],
    settings_file: Path,
    named_there: tuple[Any, str] | None,
) -> tuple[Path, str] | None:
    """The secrets file to read and what named it. ``named_there`` is ``SECRETS_FILE`` as the
    settings file gave it, with its source; a relative path there is taken from that file's
    folder, like the files an operator keeps beside it."""
    for key, value in overrides.items():
        if key.upper() == "SECRETS_FILE" and value:
            return Path(value), "overrides"
    for name in ("MAILROOM_SECRETS", "SECRETS_FILE"):
        if env.get(name):
            return Path(env[name]), f"environment ({name})"
    if named_there is not None and named_there[0]:
        path = Path(str(named_there[0]))
        if not path.is_absolute():
            path = settings_file.parent / path
        return path, named_there[1]
    return None


def password_warning(values: Mapping[str, Any], path: Path) -> str | None:
    """A warning if the settings file at ``path`` holds the SMTP password (maybe in its
    ``EMAIL_URL``): that file is meant to be shareable."""
    url = values.get("EMAIL_URL")
    if values.get("EMAIL_HOST_PASSWORD") or (url and url_has_password(str(url))):
        return (
            f"the SMTP password is in the settings file {path.absolute()}; move it to the "
            "secrets file (email_password = ...) or the EMAIL_HOST_PASSWORD environment "
            "variable, so the settings file can be shared and committed"
        )
    return None
