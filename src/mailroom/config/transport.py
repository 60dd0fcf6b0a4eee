"""Which transport: ``MAILROOM_TRANSPORT``, or ``EMAIL_BACKEND``, its older name, or what
``EMAIL_URL`` or ``EMAIL_HOST`` imply.

Inside a Django project ``EMAIL_BACKEND`` is Django's own setting and names Mailroom's Django
backend, so a Django deployment names the transport with ``MAILROOM_TRANSPORT``. Outside
Django ``EMAIL_BACKEND`` still works, with Mailroom's short names or Django's dotted ones, so an
existing settings file keeps working; naming Mailroom's Django backend there is an error, as it
names no transport. The two are one setting: the highest layer that gives either has the last
word, as for any setting, and only its word is read; both given in that one layer and
disagreeing is an error naming both.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from mailroom.config.layers import Layers, TransportChoice
from mailroom.config.model import TRANSPORT_SETTINGS, TransportName
from mailroom.config.parsers import suggest
from mailroom.config.report import Problems, attempt
from mailroom.errors import SettingsError

__all__ = ["DJANGO_BACKENDS", "MAILROOM_DJANGO_BACKEND", "choose_transport", "parse_transport"]

DJANGO_BACKENDS = {
    "django.core.mail.backends.smtp.EmailBackend": TransportName.SMTP,
    "django.core.mail.backends.console.EmailBackend": TransportName.CONSOLE,
    "django.core.mail.backends.filebased.EmailBackend": TransportName.FILE,
    "django.core.mail.backends.locmem.EmailBackend": TransportName.MEMORY,
    "django.core.mail.backends.dummy.EmailBackend": TransportName.NULL,
}
"""Django's ``EMAIL_BACKEND`` values, so an existing settings file keeps working."""

MAILROOM_DJANGO_BACKEND = "mailroom.integrations.django.EmailBackend"
"""Django's ``EMAIL_BACKEND`` when Django sends through Mailroom: it names no transport, so
given to Mailroom it is an error saying to name the transport with ``MAILROOM_TRANSPORT``."""

_NAMES = [name.value for name in TransportName]


def parse_transport(setting: str, value: Any, source: str) -> TransportName:
    """The transport ``value`` names, given as ``setting`` (``MAILROOM_TRANSPORT`` takes the
    short names; ``EMAIL_BACKEND`` also Django's dotted ones), read from ``source``."""
    text = str(value).strip()
    if setting == "EMAIL_BACKEND" and text in DJANGO_BACKENDS:
        return DJANGO_BACKENDS[text]
    if setting == "EMAIL_BACKEND" and text == MAILROOM_DJANGO_BACKEND:
        # Passing over it would leave the default transport (console) in use unnoticed.
        raise SettingsError(
            setting,
            f"{text!r} ({source}) names Django's backend for sending through Mailroom, not a "
            "transport; name Mailroom's own transport with MAILROOM_TRANSPORT instead "
            f"({', '.join(_NAMES)})",
        )
    try:
        return TransportName(text.lower())
    except ValueError:
        pass
    hint = suggest(text, _NAMES).lower()
    if text in DJANGO_BACKENDS:  # in MAILROOM_TRANSPORT, which is Mailroom's own vocabulary
        hint = f"; that is Django's name for {DJANGO_BACKENDS[text].value}"
    elif text == MAILROOM_DJANGO_BACKEND:
        hint = "; that names Django's backend for sending through Mailroom, not a transport"
    what = "backend" if setting == "EMAIL_BACKEND" else "transport"
    raise SettingsError(
        setting, f"unknown {what} {text!r} ({source}); choose one of {', '.join(_NAMES)}{hint}"
    )


def _disagree(mine: TransportChoice, older: TransportChoice) -> SettingsError:
    return SettingsError(
        "MAILROOM_TRANSPORT",
        f"is {str(mine.value).strip()!r} ({mine.source}) but EMAIL_BACKEND is "
        f"{str(older.value).strip()!r} ({older.source}); they name the same setting, so set "
        "only MAILROOM_TRANSPORT (EMAIL_BACKEND is its older name, read outside Django)",
    )


def choose_transport(layers: Layers, problems: Problems) -> TransportName | None:
    """The transport the layers name, or None for the default (or when refused: the problem
    goes to ``problems``). Records where it came from, under both its names."""
    if not layers.transport:
        if "EMAIL_HOST" not in layers.values:
            return None
        # A relay was named but no transport: the user means to send through it.
        implied = f"implied by EMAIL_HOST ({layers.sources['EMAIL_HOST']})"
        layers.sources.update(dict.fromkeys(TRANSPORT_SETTINGS, implied))
        return TransportName.SMTP
    # The highest layer that names the transport has the last word, and a lower layer's is
    # never read (not even checked), as for any setting. Within that layer an explicit name
    # beats its EMAIL_URL.
    layer = layers.transport[-1].source
    top = [c for c in layers.transport if c.source == layer]
    named = {c.setting: c for c in top if c.setting != "EMAIL_URL"}
    if not named:
        shown = f"EMAIL_URL in {layer}"
        layers.sources.update(dict.fromkeys(TRANSPORT_SETTINGS, shown))
        return TransportName(top[-1].value)
    for choice in named.values():
        layers.sources[choice.setting] = choice.source
    parsed: dict[str, TransportName] = {}
    for choice in named.values():
        value = attempt(
            problems, partial(parse_transport, choice.setting, choice.value, choice.source)
        )
        if value is None:
            return None
        parsed[choice.setting] = value
    if len(parsed) == 2 and parsed["MAILROOM_TRANSPORT"] is not parsed["EMAIL_BACKEND"]:
        problems.add(_disagree(named["MAILROOM_TRANSPORT"], named["EMAIL_BACKEND"]))
        return None
    if len(named) == 1:  # the name not given shows which one set it
        [given] = named
        other = "EMAIL_BACKEND" if given == "MAILROOM_TRANSPORT" else "MAILROOM_TRANSPORT"
        layers.sources[other] = f"{given} in {layer}"
    return next(iter(parsed.values()))
