"""Which transport: ``MAILROOM_TRANSPORT``, or ``EMAIL_BACKEND``, its older name, or what
``EMAIL_URL`` or ``EMAIL_HOST`` imply.

Inside a Django project ``EMAIL_BACKEND`` is Django's own setting and names Mailroom's Django
backend, so a Django deployment names the transport with ``MAILROOM_TRANSPORT``. Outside
Django ``EMAIL_BACKEND`` still works, with Mailroom's short names or Django's dotted ones, so an
existing settings file keeps working. The two are one setting: the highest layer's word wins,
as for any setting; both given and disagreeing is an error naming both.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from mailroom.config.layers import Layers, TransportChoice
from mailroom.config.model import TransportName
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
``mailroom`` commands reading the same environment pass over it."""

_NAMES = [name.value for name in TransportName]


def parse_transport(setting: str, value: Any, source: str) -> TransportName:
    """The transport ``value`` names, given as ``setting`` (``MAILROOM_TRANSPORT`` takes the
    short names; ``EMAIL_BACKEND`` also Django's dotted ones), read from ``source``."""
    text = str(value).strip()
    if setting == "EMAIL_BACKEND" and text in DJANGO_BACKENDS:
        return DJANGO_BACKENDS[text]
    try:
        return TransportName(text.lower())
    except ValueError:
        pass
    hint = suggest(text, _NAMES).lower()
    if text in DJANGO_BACKENDS:  # in MAILROOM_TRANSPORT, which is Mailroom's own vocabulary
        hint = f"; that is Django's name for {DJANGO_BACKENDS[text].value}"
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
    choices = [
        c
        for c in layers.transport
        if not (c.setting == "EMAIL_BACKEND" and str(c.value).strip() == MAILROOM_DJANGO_BACKEND)
    ]
    named = {c.setting: c for c in choices if c.setting != "EMAIL_URL"}  # the last of each
    for choice in named.values():
        layers.sources[choice.setting] = choice.source
    if not choices:
        if "EMAIL_HOST" not in layers.values:
            return None
        # A relay was named but no transport: the user means to send through it.
        implied = f"implied by EMAIL_HOST ({layers.sources['EMAIL_HOST']})"
        layers.sources.update(dict.fromkeys(("MAILROOM_TRANSPORT", "EMAIL_BACKEND"), implied))
        return TransportName.SMTP
    winner = choices[-1]
    # Only the highest layer's word is read (as for any setting), and both names when both
    # are given, to compare them.
    read = list(named.values()) if len(named) == 2 else [winner]
    parsed: dict[str, TransportName] = {}
    for choice in read:
        value = attempt(
            problems, partial(parse_transport, choice.setting, choice.value, choice.source)
        )
        if value is None:
            return None
        parsed[choice.setting] = value
    if len(parsed) == 2 and parsed["MAILROOM_TRANSPORT"] is not parsed["EMAIL_BACKEND"]:
        problems.add(_disagree(named["MAILROOM_TRANSPORT"], named["EMAIL_BACKEND"]))
        return None
    if winner.setting == "EMAIL_URL":
        shown = f"EMAIL_URL in {winner.source}"
        layers.sources.update(dict.fromkeys(("MAILROOM_TRANSPORT", "EMAIL_BACKEND"), shown))
        return TransportName(winner.value)
    other = "EMAIL_BACKEND" if winner.setting == "MAILROOM_TRANSPORT" else "MAILROOM_TRANSPORT"
    layers.sources[winner.setting] = winner.source
    layers.sources[other] = f"{winner.setting} in {winner.source}"
    return parsed[winner.setting]
