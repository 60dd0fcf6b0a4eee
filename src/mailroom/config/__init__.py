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

Setting names are Django's where Django has one; the transport is ``MAILROOM_TRANSPORT``
(``EMAIL_BACKEND``, Django's name, is understood outside Django). Every value remembers which
layer it came from, for ``mailroom config show``. The password is a
:class:`pydantic.SecretStr`, so no ``repr``, log line or error message shows it; a URL is
shown only through :func:`redact_url`.

The modules, lowest first: ``redaction`` (URLs as shown), ``parsers`` (text forms of values),
``model`` (:class:`Settings`), ``report`` (where problems go), ``email_url``, ``files`` and
``environment`` (the sources), ``layers`` (their precedence), ``transport`` (its two names),
``checks`` (across settings), ``loading`` (:func:`load_settings`).
"""

from __future__ import annotations

from mailroom.config.loading import load_settings, load_settings_report
from mailroom.config.model import (
    SECRET_SETTINGS,
    SETTING_NAMES,
    URL_SETTINGS,
    Backend,
    NotificationTypeSetting,
    Settings,
    TrackingIP,
    TransportName,
)
from mailroom.config.parsers import parse_rate_limits
from mailroom.config.redaction import REDACTED, redact_url, url_secrets
from mailroom.config.report import SettingsReport

# Plainly sorted, as the public-API test asserts for every __all__ (ruff would put the
# constants first).
__all__ = [  # noqa: RUF022
    "Backend",
    "NotificationTypeSetting",
    "REDACTED",
    "SECRET_SETTINGS",
    "SETTING_NAMES",
    "Settings",
    "SettingsReport",
    "TrackingIP",
    "TransportName",
    "URL_SETTINGS",
    "load_settings",
    "load_settings_report",
    "parse_rate_limits",
    "redact_url",
    "url_secrets",
]
