"""Typed, frozen settings, loaded in one documented order.

Precedence, lowest first: built-in defaults < settings file (TOML) < secrets file < environment.
Within one layer, an explicit setting beats a value taken from that layer's ``EMAIL_URL``.

- The settings file is named by ``--config`` or ``MAILROOM_CONFIG``; otherwise ``mailroom.toml``
  in the working directory is read if it exists. Keys are the setting names, in either case.
- The secrets file is named by ``MAILROOM_SECRETS`` or ``SECRETS_FILE`` (environment or settings
  file; a relative path in the settings file is taken from that file's folder).
  It holds ``key = value`` lines (an INI file; a ``[secrets]`` header is optional), such as
  ``email_password = abcd1234``.
- The environment holds the settings under their own names (``EMAIL_HOST=...``).

Setting names are Django's where Django has one. Every value remembers which layer it came
from, for ``mailroom config show``. The password is a :class:`pydantic.SecretStr`, so no
``repr``, log line or error message shows it; a URL is shown only through :func:`redact_url`.

:func:`load_settings` raises the first problem it finds; :func:`load_settings_report` collects
them all, for the commands an operator runs to find a broken setting.
"""

from __future__ import annotations

import configparser
import difflib
import logging
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import getaddresses
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, PrivateAttr, SecretStr, ValidationError, field_validator

from mailroom.errors import MessageError, SettingsError
from mailroom.message import Address

__all__ = [
    "Backend",
    "Settings",
    "SettingsReport",
    "load_settings",
    "load_settings_report",
    "redact_url",
    "url_secrets",
]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_SETTINGS_FILE = "mailroom.toml"


class Backend(StrEnum):
    """Where messages go (``EMAIL_BACKEND``)."""

    SMTP = "smtp"
    """A real relay over SMTP."""
    CONSOLE = "console"
    """Printed to standard output; the default while no relay is configured."""
    FILE = "file"
    """One ``.eml`` file per message under ``EMAIL_FILE_PATH``."""
    MEMORY = "memory"
    """Kept in a list in the process, for tests."""
    NULL = "null"
    """Accepted and thrown away."""


# Django's EMAIL_BACKEND values, so an existing settings file keeps working.
_DJANGO_BACKENDS = {
    "django.core.mail.backends.smtp.EmailBackend": Backend.SMTP,
    "django.core.mail.backends.console.EmailBackend": Backend.CONSOLE,
    "django.core.mail.backends.filebased.EmailBackend": Backend.FILE,
    "django.core.mail.backends.locmem.EmailBackend": Backend.MEMORY,
    "django.core.mail.backends.dummy.EmailBackend": Backend.NULL,
}

SECRET_SETTINGS = frozenset({"EMAIL_HOST_PASSWORD", "SECRET_KEY"})

# Keys a secrets file may hold, and the setting each one sets. ``email_password`` is the name
# operators of Zulip-style deployments already use.
_SECRETS_KEYS = {
    "email_password": "EMAIL_HOST_PASSWORD",
    "email_host_password": "EMAIL_HOST_PASSWORD",
    "secret_key": "SECRET_KEY",
}

MIN_SECRET_KEY_LENGTH = 32
"""Characters; ``python -c 'import secrets; print(secrets.token_urlsafe(32))'`` makes 43."""


_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# libpq and others also take a password as a query parameter (?password=...).
_QUERY_SECRET = re.compile(r"(?i)([?&;](?:password|passwd|pwd|pass|secret)=)[^&#;]*")
REDACTED = "***"


def _split_url(url: str) -> tuple[str, str, str | None, str]:
    """``url`` as (scheme and ``//``, user, password or ``None``, the rest from the ``@`` on).

    RFC 3986 §3.2 ends the authority at the first ``/``, ``?`` or ``#``, but an unencoded one
    inside the password moves that boundary, so the user information is taken up to the
    *last* ``@``: better to hide a piece of the path than to show a piece of the password.
    Without user information, user is ``""`` and the rest is all after the scheme.
    """
    match = _URL_SCHEME.match(url)
    head = match.group() if match else ""
    rest = url[len(head) :]
    at = rest.rfind("@")
    # "sqlite:////srv/a@b.db": an empty authority, the "@" is in the path.
    if at < 0 or rest.startswith("/"):
        return head, "", None, rest
    user, colon, password = rest[:at].partition(":")
    return head, user, password if colon else None, rest[at:]


def redact_url(url: str) -> str:
    """``url`` with the password of its user information (and any ``password=`` query
    parameter) replaced by ``***``, for showing in output, logs and error messages.

    Never raises. The user information ends at the *last* ``@`` (see :func:`_split_url`).
    """
    head, user, password, rest = _split_url(url)
    shown = f"{user}:{REDACTED}{rest}" if password is not None else user + rest
    return head + _QUERY_SECRET.sub(rf"\g<1>{REDACTED}", shown)


def url_secrets(url: str) -> tuple[str, ...]:
    """What :func:`redact_url` hides in ``url``, as written there: the password of its user
    information and the values of its ``password=`` query parameters. For taking them out of
    text that was not built by us, such as a database driver's error message."""
    _head, _user, password, rest = _split_url(url)
    found = [password] if password else []
    found += [m.group()[len(m.group(1)) :] for m in _QUERY_SECRET.finditer(rest)]
    return tuple(secret for secret in found if secret)


def _address_list(value: Any) -> Any:
    """``"Ada <ada@x>, bob@y"`` (environment), a list of addresses, or Django's
    ``[("Ada", "ada@x"), ...]`` pairs → a tuple of address strings."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(
            f"{name} <{addr}>" if name else addr for name, addr in getaddresses([value]) if addr
        )
    if isinstance(value, list | tuple):
        out: list[Any] = []
        for item in value:
            if isinstance(item, list | tuple) and len(item) == 2:  # Django's (name, address)
                name, addr = item
                out.append(f"{name} <{addr}>" if name else str(addr))
            else:
                out.append(item)
        return tuple(out)
    return value


def _path_list(value: Any) -> Any:
    """``"dir1:dir2"`` (``os.pathsep``-separated, like ``PATH``) or a list → paths."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(part for part in value.split(os.pathsep) if part)
    return value


class Settings(BaseModel):
    """Mailroom's resolved settings. Build with :func:`load_settings`."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=False)

    EMAIL_BACKEND: Backend = Backend.CONSOLE
    EMAIL_HOST: str = "localhost"
    EMAIL_PORT: int | None = None
    EMAIL_HOST_USER: str = ""
    EMAIL_HOST_PASSWORD: SecretStr = SecretStr("")
    EMAIL_USE_TLS: bool = False
    EMAIL_USE_SSL: bool = False
    EMAIL_TIMEOUT: float = 30.0
    EMAIL_SSL_CERTFILE: Path | None = None
    EMAIL_SSL_KEYFILE: Path | None = None
    EMAIL_SSL_CAFILE: Path | None = None
    EMAIL_LOCAL_HOSTNAME: str | None = None
    DEFAULT_FROM_EMAIL: str = "webmaster@localhost"
    NOREPLY_EMAIL_ADDRESS: str | None = None
    EMAIL_FILE_PATH: Path = Path("mailroom-mail")
    EMAIL_MAX_MESSAGE_SIZE: int = 25 * 1024 * 1024
    EMAIL_MAX_RECIPIENTS_PER_MESSAGE: int = 100
    SECRETS_FILE: Path | None = None

    DATABASE_URL: str = "sqlite:///mailroom.db"
    EMAIL_MAX_ATTEMPTS: int = 3
    EMAIL_MAX_AGE: float = 2 * 24 * 3600.0
    EMAIL_RETRY_DELAY: float = 60.0
    EMAIL_BURST: int = 0
    EMAIL_BURST_PAUSE: float = 0.0
    EMAIL_RATE_LIMIT: str = ""
    WORKER_CONCURRENCY: int = 4
    WORKER_BATCH_SIZE: int = 250
    WORKER_MAX_BATCH_BYTES: int = 64 * 1024 * 1024
    WORKER_LEASE_SECONDS: float = 300.0
    WORKER_POLL_INTERVAL: float = 0.05
    WORKER_PROCESSES: int = 1
    WORKER_EVENT_LOOP: str = "auto"
    WORKER_SHUTDOWN_GRACE: float = 10.0
    SEND_LOG_FILE: Path | None = None
    ERROR_LOG_FILE: Path | None = None

    # Notifications (see README, "Notifications").
    SECRET_KEY: SecretStr = SecretStr("")
    EMAIL_SUBJECT_PREFIX: str = ""
    SERVER_EMAIL: str | None = None
    ADMINS: tuple[str, ...] = ()
    EMAIL_FALLBACK_TO: tuple[str, ...] = ()
    ADD_TOKENS_TO_NOREPLY_ADDRESS: bool = True
    FRONTEND_BASE_URL: str = ""
    PUBLIC_BASE_URL: str = ""
    UNSUBSCRIBE_EMAIL_ADDRESS: str | None = None
    UNSUBSCRIBE_TOKEN_MAX_AGE: float = 365 * 24 * 3600.0
    EMAIL_TEMPLATE_DIRS: tuple[Path, ...] = ()
    NOTIFICATION_TYPE_HEADER: str = "X-Mailroom-Notification-Type"
    TEMPLATE_RENDER_TIMEOUT: float = 2.0
    TEMPLATE_MAX_OUTPUT_CHARS: int = 5_000_000

    _sources: Mapping[str, str] = PrivateAttr(default_factory=dict)
    _warnings: tuple[str, ...] = PrivateAttr(default=())

    _split_addresses = field_validator("ADMINS", "EMAIL_FALLBACK_TO", mode="before")(_address_list)
    _split_paths = field_validator("EMAIL_TEMPLATE_DIRS", mode="before")(_path_list)

    @property
    def port(self) -> int:
        """``EMAIL_PORT``, or the port the chosen security implies: 465, 587 or 25."""
        if self.EMAIL_PORT is not None:
            return self.EMAIL_PORT
        if self.EMAIL_USE_SSL:
            return 465
        return 587 if self.EMAIL_USE_TLS else 25

    @property
    def noreply_address(self) -> str:
        """``NOREPLY_EMAIL_ADDRESS``, or ``noreply@`` the domain of ``DEFAULT_FROM_EMAIL``."""
        if self.NOREPLY_EMAIL_ADDRESS:
            return self.NOREPLY_EMAIL_ADDRESS
        # Strip first: in "Team <team@example.com> " the ">" is not the last character.
        address = self.DEFAULT_FROM_EMAIL.strip()
        domain = address.rpartition("@")[2].rstrip(">").strip() or "localhost"
        return f"noreply@{domain}"

    @property
    def server_email(self) -> str:
        """``SERVER_EMAIL`` (sender of error mail to ``ADMINS``), else ``DEFAULT_FROM_EMAIL``."""
        return self.SERVER_EMAIL or self.DEFAULT_FROM_EMAIL

    def secret_key(self, purpose: str) -> str:
        """``SECRET_KEY``, or a :class:`SettingsError` saying what needs it and how to set it."""
        key = self.SECRET_KEY.get_secret_value()
        if not key:
            raise SettingsError(
                "SECRET_KEY",
                f"is needed to {purpose} but is not set; put `secret_key = ...` in the secrets "
                "file or set the SECRET_KEY environment variable (make one with: python -c "
                "'import secrets; print(secrets.token_urlsafe(32))')",
            )
        return key

    def source_of(self, name: str) -> str:
        """Where a setting's value came from: ``default``, a file path, ``environment``..."""
        return self._sources.get(name, "default")

    @property
    def warnings(self) -> tuple[str, ...]:
        """Things that work but should be changed (a password in the settings file)."""
        return self._warnings

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # DATABASE_URL may carry a password; the repr (and str) show it masked.
        for name, value in super().__repr_args__():
            redact = name in URL_SETTINGS and isinstance(value, str)
            yield name, redact_url(value) if redact else value


SETTING_NAMES = tuple(Settings.model_fields)
URL_SETTINGS = frozenset(name for name in SETTING_NAMES if name.endswith("_URL"))
"""Settings holding a URL, shown through :func:`redact_url` everywhere."""


class _Problems:
    """Where a failed check goes: raised at once (:func:`load_settings`) or kept, so that
    every error can be shown at the end (:func:`load_settings_report`).

    Callers hand an error over *outside* their ``except`` blocks, so the exception raised
    does not keep (as its ``__context__``) a parser's error that may quote a secret.
    """

    def __init__(self, *, keep: bool) -> None:
        self.keep = keep
        self.errors: list[SettingsError] = []

    def add(self, error: SettingsError) -> None:
        if not self.keep:
            raise error
        self.errors.append(error)


@dataclass
class _Layers:
    """Raw values gathered from each layer, and where each came from."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    """Warnings logged once per process (misspelt environment variables)."""

    def put(self, values: Mapping[str, Any], source: str) -> None:
        for key, value in values.items():
            self.values[key] = value
            self.sources[key] = source


def _suggest(key: str, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(key.upper(), [k.upper() for k in known], n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _canonical_keys(raw: Mapping[str, Any], where: str, problems: _Problems) -> dict[str, Any]:
    """Upper-case the keys of a settings file and refuse the ones Mailroom does not know."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.upper()
        if name not in SETTING_NAMES and name != "EMAIL_URL":
            problems.add(
                SettingsError(name, f"unknown setting in {where}{_suggest(name, SETTING_NAMES)}")
            )
            continue
        out[name] = value
    return out


_URL_OPTIONS = {"tls": "EMAIL_USE_TLS", "ssl": "EMAIL_USE_SSL", "timeout": "EMAIL_TIMEOUT"}

_ENCODE_ADVICE = (
    "special characters in the user name and password must be percent-encoded (/ as %2F, "
    "? as %3F, # as %23, @ as %40, : as %3A, % as %25), or leave the password out of "
    "EMAIL_URL and set EMAIL_HOST_PASSWORD or email_password in the secrets file"
)


def _expand_smtp_url(parts: SplitResult, port: int | None, source: str) -> dict[str, Any]:
    values: dict[str, Any] = {
        "EMAIL_BACKEND": Backend.SMTP,
        "EMAIL_USE_SSL": parts.scheme.lower() == "smtps",
    }
    if parts.hostname:
        values["EMAIL_HOST"] = parts.hostname
    if port is not None:
        values["EMAIL_PORT"] = port
    if parts.username:
        values["EMAIL_HOST_USER"] = unquote(parts.username)
    if parts.password:
        values["EMAIL_HOST_PASSWORD"] = unquote(parts.password)
    for option, value in parse_qs(parts.query).items():
        setting = _URL_OPTIONS.get(option.lower())
        if setting is None:
            raise SettingsError(
                "EMAIL_URL",
                # The option's name is not echoed: a query string is where the tail of a
                # password with an unencoded '?' would land.
                f"unknown option ({source}); known options are tls, ssl and timeout",
            )
        values[setting] = value[-1]
    return values


def _userinfo_spills_over(url: str) -> bool:
    """Whether an ``@`` comes after the end of the authority (RFC 3986 §3.2: the first ``/``,
    ``?`` or ``#``): then a user name or password holds one of those unencoded, and the parser
    would take the rest of the password for a path, query or fragment."""
    _, sep, rest = url.partition("://")
    if not sep:
        return False
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    return "@" in rest[min(ends, default=len(rest)) :]


def _expand_email_url(url: str, source: str) -> dict[str, Any]:
    """``smtp://user:pass@host:587?tls=true`` → the settings it stands for.

    No error message quotes the URL or any part of it that could hold the user information.
    """
    match = _URL_SCHEME.match(url)
    if match is None:
        # Nothing of it is echoed: it may be a password put in the wrong variable.
        raise SettingsError(
            "EMAIL_URL",
            f"is not a URL ({source}); write smtp://user@host:587?tls=true, smtps://host, "
            "console://, file:///path, memory:// or null://",
        )
    scheme = match.group()[:-3].lower()
    smtp = scheme in ("smtp", "smtps", "submission")
    if smtp and _userinfo_spills_over(url):
        raise SettingsError(
            "EMAIL_URL",
            f"the user name or password ({source}) contains an unencoded /, ? or #, so the "
            f"URL cannot be read; {_ENCODE_ADVICE}",
        )
    part = ""
    try:
        parts = urlsplit(url)
    except ValueError:
        part = "the host is not a name or a bracketed [IPv6] address"
    else:
        try:
            port = parts.port
        except ValueError:
            part = "the port is not a number from 1 to 65535"
    if part:
        # Not the parser's message: it quotes the "port", which with an unencoded character
        # in the password is a piece of the password.
        raise SettingsError("EMAIL_URL", f"not a valid URL ({source}): {part}; {_ENCODE_ADVICE}")
    if smtp:
        return _expand_smtp_url(parts, port, source)
    if scheme in ("console", "memory", "null"):
        return {"EMAIL_BACKEND": Backend(scheme)}
    if scheme == "file":
        values: dict[str, Any] = {"EMAIL_BACKEND": Backend.FILE}
        if parts.path:
            values["EMAIL_FILE_PATH"] = unquote(parts.path)
        return values
    raise SettingsError(
        "EMAIL_URL",
        f"unknown scheme {scheme!r} ({source}); use smtp://, smtps://, console://, "
        "file://, memory:// or null://",
    )


def _apply_layer(layers: _Layers, values: dict[str, Any], source: str, problems: _Problems) -> None:
    """Add one layer: its ``EMAIL_URL`` first, then its explicit settings on top."""
    url = values.pop("EMAIL_URL", None)
    if url:
        expanded = _attempt(problems, lambda: _expand_email_url(str(url), source))
        layers.put(expanded or {}, f"EMAIL_URL in {source}")
    layers.put(values, source)


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


def _read_settings_file(path: Path, problems: _Problems) -> dict[str, Any]:
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
    return _canonical_keys(raw, str(shown), problems)


def _read_secrets_file(path: Path) -> dict[str, Any]:
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
                    f"{' and '.join(known)}{_suggest(key, known).lower()}",
                )
            out[setting] = value.strip().strip("\"'")
    return out


# Environment variables Mailroom reads besides the settings themselves.
_OTHER_VARIABLES = ("EMAIL_URL", "MAILROOM_CONFIG", "MAILROOM_SECRETS")
_warned_variables: set[str] = set()


def _read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    names = (*SETTING_NAMES, "EMAIL_URL")
    return {name: environ[name] for name in names if environ.get(name, "") != ""}


def _misspelt_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``EMAIL_*`` or ``MAILROOM_*`` variable that is close to a name
    Mailroom reads but is not one (``EMAIL_HOST_PASWORD``): otherwise it is silently ignored.

    Only near misses are named; other programs' ``EMAIL_*`` variables are theirs. The value is
    never shown: the variable may well be a password.
    """
    known = (*SETTING_NAMES, *_OTHER_VARIABLES)
    found: list[str] = []
    for name in environ:
        if not name.upper().startswith(("EMAIL_", "MAILROOM_")) or name in known:
            continue
        close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.8)
        if close:
            found.append(
                f"environment variable {name} is not a Mailroom setting and is ignored; "
                f"did you mean {close[0]}?"
            )
    return found


def _normalise_backend(value: Any, source: str) -> Backend:
    text = str(value).strip()
    if text in _DJANGO_BACKENDS:
        return _DJANGO_BACKENDS[text]
    try:
        return Backend(text.lower())
    except ValueError:
        choices = ", ".join(b.value for b in Backend)
        raise SettingsError(
            "EMAIL_BACKEND",
            f"unknown backend {text!r} ({source}); choose one of {choices}"
            f"{_suggest(text, [b.value for b in Backend]).lower()}",
        ) from None


def _validation_errors(exc: ValidationError, layers: _Layers) -> list[tuple[str, SettingsError]]:
    """Pydantic's report as one error per setting, never echoing a secret."""
    out: list[tuple[str, SettingsError]] = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "settings"
        source = layers.sources.get(name, "default")
        given = error.get("input")
        if name in SECRET_SETTINGS or source.startswith("EMAIL_URL"):
            shown = ""
        elif name in URL_SETTINGS and isinstance(given, str):
            shown = f" (got {redact_url(given)!r})"
        else:
            shown = f" (got {given!r})"
        out.append((name, SettingsError(name, f"{error['msg']}{shown}, from {source}")))
    return out


_RATE_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}


def parse_rate_limits(text: str) -> list[tuple[int, float]]:
    """``"10/s, 100/day"`` → ``[(10, 1.0), (100, 86400.0)]`` (count, window in seconds)."""
    limits: list[tuple[int, float]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        count, _, unit = part.partition("/")
        window = _RATE_UNITS.get(unit.strip().lower())
        if not count.strip().isdigit() or int(count) < 1 or window is None:
            raise SettingsError(
                "EMAIL_RATE_LIMIT",
                f"{part!r} is not a rate; write N/unit with unit s, m, h or day, "
                "several separated by commas (e.g. '10/s, 100/day')",
            )
        limits.append((int(count), window))
    return limits


def _validate(
    values: dict[str, Any], layers: _Layers, problems: _Problems
) -> tuple[Settings, dict[str, Any]]:
    """The settings, and (when errors are kept) the raw values refused, left at defaults."""
    rejected: dict[str, Any] = {}
    while True:
        try:
            return Settings.model_validate(values), rejected
        except ValidationError as exc:
            failures = _validation_errors(exc, layers)
        # Handed over outside the except block, so pydantic's error, which quotes the raw
        # input (maybe the password), is not kept as the raised error's __context__.
        for name, failure in failures:
            problems.add(failure)
            if name in values:
                value = values.pop(name)
                rejected[name] = "********" if name in SECRET_SETTINGS else value
        if not any(name in rejected for name, _ in failures):
            return Settings(), rejected  # nothing left to drop: every value at its default


def _locate_secrets_file(
    env: Mapping[str, str], layers: _Layers, settings_file: Path, overrides: Mapping[str, Any]
) -> tuple[Path, str] | None:
    """The secrets file to read and what named it; relative paths in the settings file are
    taken from that file's folder, like the files an operator keeps beside it."""
    for key, value in overrides.items():
        if key.upper() == "SECRETS_FILE" and value:
            return Path(value), "overrides"
    for name in ("MAILROOM_SECRETS", "SECRETS_FILE"):
        if env.get(name):
            return Path(env[name]), f"environment ({name})"
    if layers.values.get("SECRETS_FILE"):
        path = Path(str(layers.values["SECRETS_FILE"]))
        if not path.is_absolute():
            path = settings_file.parent / path
        return path, layers.sources["SECRETS_FILE"]
    return None


def _check_worker_settings(settings: Settings) -> None:
    """Counts and durations of the outbox and its workers."""
    if settings.WORKER_EVENT_LOOP not in ("auto", "asyncio", "uvloop"):
        raise SettingsError("WORKER_EVENT_LOOP", "must be auto, asyncio or uvloop")
    for name in (
        "EMAIL_MAX_ATTEMPTS",
        "EMAIL_MAX_RECIPIENTS_PER_MESSAGE",
        "WORKER_CONCURRENCY",
        "WORKER_BATCH_SIZE",
        "WORKER_PROCESSES",
        "WORKER_MAX_BATCH_BYTES",
    ):
        if getattr(settings, name) < 1:
            raise SettingsError(name, "must be at least 1")
    for name in (
        "EMAIL_MAX_AGE",
        "EMAIL_RETRY_DELAY",
        "WORKER_LEASE_SECONDS",
        "WORKER_POLL_INTERVAL",
    ):
        if getattr(settings, name) <= 0:
            raise SettingsError(name, "must be a positive number of seconds")
    if settings.WORKER_SHUTDOWN_GRACE < 0:
        raise SettingsError("WORKER_SHUTDOWN_GRACE", "must be 0 or more seconds")


def _check_tls(settings: Settings) -> None:
    if settings.EMAIL_USE_TLS and settings.EMAIL_USE_SSL:
        raise SettingsError(
            "EMAIL_USE_TLS",
            "EMAIL_USE_TLS and EMAIL_USE_SSL are both on; they are mutually exclusive. "
            "Use EMAIL_USE_TLS for STARTTLS (usually port 587) or EMAIL_USE_SSL for implicit "
            "TLS (usually port 465).",
        )


def _check_port(settings: Settings) -> None:
    if settings.EMAIL_PORT is not None and not 0 < settings.EMAIL_PORT < 65536:
        raise SettingsError(
            "EMAIL_PORT", f"{settings.EMAIL_PORT} is not a port number (1 to 65535)"
        )
    if settings.EMAIL_PORT == 465 and settings.EMAIL_USE_TLS and not settings.EMAIL_USE_SSL:
        raise SettingsError(
            "EMAIL_USE_TLS",
            "port 465 speaks implicit TLS, not STARTTLS: set EMAIL_USE_SSL = true and "
            "EMAIL_USE_TLS = false (or use port 587 with EMAIL_USE_TLS)",
        )


def _check_sending(settings: Settings) -> None:
    if settings.EMAIL_TIMEOUT <= 0:
        raise SettingsError("EMAIL_TIMEOUT", "must be a positive number of seconds")
    if settings.EMAIL_MAX_MESSAGE_SIZE <= 0:
        raise SettingsError("EMAIL_MAX_MESSAGE_SIZE", "must be a positive number of bytes")


def _check_pacing(settings: Settings) -> None:
    if settings.EMAIL_BURST < 0 or settings.EMAIL_BURST_PAUSE < 0:
        raise SettingsError("EMAIL_BURST", "EMAIL_BURST and EMAIL_BURST_PAUSE cannot be negative")
    if settings.EMAIL_BURST_PAUSE and not settings.EMAIL_BURST:
        raise SettingsError("EMAIL_BURST", "EMAIL_BURST_PAUSE is set but EMAIL_BURST is 0")
    parse_rate_limits(settings.EMAIL_RATE_LIMIT)  # raises SettingsError naming the setting


def _check_client_certificate(settings: Settings) -> None:
    if settings.EMAIL_SSL_KEYFILE and not settings.EMAIL_SSL_CERTFILE:
        raise SettingsError("EMAIL_SSL_CERTFILE", "EMAIL_SSL_KEYFILE is set but no certificate")


_HEADER_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]+\Z")  # RFC 5322 §2.2 field name


def _check_base_url(name: str, value: str, *, https_only: bool) -> None:
    if not value:
        return
    parts = urlsplit(value)
    schemes = ("https",) if https_only else ("https", "http")
    if parts.scheme not in schemes or not parts.netloc or parts.query or parts.fragment:
        need = "an https:// URL" if https_only else "an http:// or https:// URL"
        why = " (RFC 8058 one-click unsubscribe links must be HTTPS)" if https_only else ""
        raise SettingsError(
            name, f"must be {need} without query or fragment, e.g. https://app.example{why}"
        )


def _check_notification_settings(settings: Settings) -> None:
    key = settings.SECRET_KEY.get_secret_value()
    if key and len(key) < MIN_SECRET_KEY_LENGTH:
        # The value is never echoed, only its length requirement.
        raise SettingsError(
            "SECRET_KEY",
            f"is too short to sign links safely; use at least "
            f"{MIN_SECRET_KEY_LENGTH} random characters",
        )
    _check_base_url("FRONTEND_BASE_URL", settings.FRONTEND_BASE_URL, https_only=False)
    _check_base_url("PUBLIC_BASE_URL", settings.PUBLIC_BASE_URL, https_only=True)
    if not _HEADER_NAME.match(settings.NOTIFICATION_TYPE_HEADER):
        raise SettingsError(
            "NOTIFICATION_TYPE_HEADER", "must be a header field name (printable ASCII, no colon)"
        )
    if settings.UNSUBSCRIBE_TOKEN_MAX_AGE <= 0:
        raise SettingsError("UNSUBSCRIBE_TOKEN_MAX_AGE", "must be a positive number of seconds")
    if settings.TEMPLATE_RENDER_TIMEOUT <= 0:
        raise SettingsError("TEMPLATE_RENDER_TIMEOUT", "must be a positive number of seconds")
    if settings.TEMPLATE_MAX_OUTPUT_CHARS < 1:
        raise SettingsError("TEMPLATE_MAX_OUTPUT_CHARS", "must be at least 1")
    addresses = [
        (name, a) for name in ("ADMINS", "EMAIL_FALLBACK_TO") for a in getattr(settings, name)
    ]
    addresses += [
        (name, getattr(settings, name))
        for name in ("SERVER_EMAIL", "UNSUBSCRIBE_EMAIL_ADDRESS")
        if getattr(settings, name)
    ]
    for name, address in addresses:
        try:
            Address.parse(address, name)
        except MessageError as exc:
            raise SettingsError(name, str(exc).removeprefix(f"{name}: ")) from None


# The database URL schemes Mailroom runs on (SQLAlchemy dialect[+driver]); psycopg 3 is the
# PostgreSQL driver it installs and is added to a bare postgresql:// URL.
_DATABASE_SCHEMES = frozenset(
    {
        "sqlite",
        "sqlite+pysqlite",
        "postgresql",
        "postgres",
        "postgresql+psycopg",
        "postgres+psycopg",
    }
)


def _check_database_url(settings: Settings) -> None:
    """Refuse a database Mailroom cannot use now, not at the first query."""
    url = settings.DATABASE_URL.strip()
    match = _URL_SCHEME.match(url)
    scheme = match.group()[:-3] if match else ""
    if scheme in _DATABASE_SCHEMES:
        return
    if scheme.lower() in _DATABASE_SCHEMES:  # SQLAlchemy finds its dialects by exact name
        what = f"{scheme}:// must be written in lower case"
    elif scheme:
        what = f"{scheme}:// is not supported"
    else:
        what = "is not a database URL"
    raise SettingsError(
        "DATABASE_URL",
        f"{what} ({redact_url(url)!r} from {settings.source_of('DATABASE_URL')}); Mailroom runs on "
        "SQLite (sqlite:///path/to/mailroom.db) or PostgreSQL "
        "(postgresql://user:password@host:5432/dbname)",
    )


# Each check raises the first problem it finds; load_settings stops at the first, while
# load_settings_report runs them all.
_CHECKS: tuple[Callable[[Settings], None], ...] = (
    _check_tls,
    _check_port,
    _check_sending,
    _check_worker_settings,
    _check_pacing,
    _check_client_certificate,
    _check_notification_settings,
    _check_database_url,
)


def _attempt(problems: _Problems, action: Callable[[], _T]) -> _T | None:
    """``action()``, or None with its :class:`SettingsError` handed to ``problems``."""
    try:
        return action()
    except SettingsError as exc:
        failure = exc
    problems.add(failure)  # outside the except block: see _Problems
    return None


def _gather(
    config_path: str | os.PathLike[str] | None,
    env: Mapping[str, str],
    overrides: Mapping[str, Any],
    problems: _Problems,
) -> _Layers:
    """Every layer's raw values, lowest first (see the module docstring)."""
    layers = _Layers()
    path = config_path or env.get("MAILROOM_CONFIG")
    settings_file = Path(path) if path else Path(DEFAULT_SETTINGS_FILE)
    if path or settings_file.exists():
        from_file = _attempt(problems, lambda: _read_settings_file(settings_file, problems)) or {}
        _warn_password_in_settings_file(from_file, settings_file, layers)
        _apply_layer(layers, from_file, str(settings_file.absolute()), problems)

    located = _locate_secrets_file(env, layers, settings_file, overrides)
    if located is not None:
        secrets_file, named_by = located
        layers.put({"SECRETS_FILE": secrets_file}, named_by)
        secrets = _attempt(problems, lambda: _read_secrets_file(secrets_file)) or {}
        layers.put(secrets, f"secrets file {secrets_file.absolute()}")

    layers.notices.extend(_misspelt_variables(env))
    _apply_layer(layers, _read_environment(env), "environment", problems)
    if overrides:
        canonical = _canonical_keys(overrides, "overrides", problems)
        _apply_layer(layers, canonical, "overrides", problems)
    return layers


def _resolve(
    config_path: str | os.PathLike[str] | None,
    environ: Mapping[str, str] | None,
    overrides: Mapping[str, Any],
    problems: _Problems,
) -> tuple[Settings, dict[str, Any]]:
    """Read every layer; the settings and the raw values refused (see :class:`_Problems`)."""
    layers = _gather(config_path, os.environ if environ is None else environ, overrides, problems)
    values = dict(layers.values)
    if "EMAIL_BACKEND" in values:
        given, source = values.pop("EMAIL_BACKEND"), layers.sources["EMAIL_BACKEND"]
        backend = _attempt(problems, lambda: _normalise_backend(given, source))
        if backend is not None:
            values["EMAIL_BACKEND"] = backend
    elif "EMAIL_HOST" in values:
        # A relay was named but no backend: the user means to send through it.
        values["EMAIL_BACKEND"] = Backend.SMTP
        layers.sources["EMAIL_BACKEND"] = f"implied by EMAIL_HOST ({layers.sources['EMAIL_HOST']})"

    settings, rejected = _validate(values, layers, problems)
    settings._sources = dict(layers.sources)
    settings._warnings = (*layers.warnings, *layers.notices)
    for check in _CHECKS:
        _attempt(problems, lambda: check(settings))  # noqa: B023 - called at once
    for warning in layers.warnings:
        logger.warning(warning)
    for notice in layers.notices:
        if notice not in _warned_variables:
            _warned_variables.add(notice)
            logger.warning(notice)
    return settings, rejected


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read every layer afresh and return validated settings; the first problem found is
    raised as a :class:`SettingsError`.

    ``overrides`` sit above the environment; they are for programs that build their settings
    in code (and for tests).
    """
    settings, _ = _resolve(config_path, environ, overrides, _Problems(keep=False))
    return settings


@dataclass(frozen=True)
class SettingsReport:
    """Every setting and where it came from, with every problem found, for the commands that
    diagnose a broken configuration (``config show``, ``status``) and must not stop at it."""

    settings: Settings
    """The settings; a value that was refused is left at its default (see ``rejected``)."""
    rejected: Mapping[str, Any]
    """The raw values refused by type validation, by setting (secrets masked)."""
    errors: tuple[SettingsError, ...]

    def usable(self, name: str) -> bool:
        """Whether ``settings.<name>`` is the value the operator meant: no error names it and
        the settings file, which could have set it, was read."""
        refused = {error.setting for error in self.errors}
        return name not in refused and "MAILROOM_CONFIG" not in refused


def load_settings_report(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> SettingsReport:
    """Like :func:`load_settings`, but every problem is collected instead of raised."""
    problems = _Problems(keep=True)
    settings, rejected = _resolve(config_path, environ, overrides, problems)
    return SettingsReport(settings, rejected, tuple(problems.errors))


def _warn_password_in_settings_file(values: Mapping[str, Any], path: Path, layers: _Layers) -> None:
    url_password = False
    if values.get("EMAIL_URL"):
        try:
            url_password = bool(urlsplit(str(values["EMAIL_URL"])).password)
        except ValueError:
            url_password = False
    if values.get("EMAIL_HOST_PASSWORD") or url_password:
        layers.warnings.append(
            f"the SMTP password is in the settings file {path.absolute()}; move it to the "
            "secrets file (email_password = ...) or the EMAIL_HOST_PASSWORD environment "
            "variable, so the settings file can be shared and committed"
        )
