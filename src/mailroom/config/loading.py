"""Reading the settings: every layer gathered (:mod:`~mailroom.config.layers`), the transport
chosen, the values validated by the model and checked across settings.

:func:`load_settings` raises the first problem it finds; :func:`load_settings_report` collects
them all. Neither echoes a secret: pydantic's messages are rewritten per setting.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from mailroom.config.checks import CHECKS
from mailroom.config.environment import first_notice
from mailroom.config.layers import Layers, gather
from mailroom.config.model import SECRET_SETTINGS, URL_SETTINGS, Settings
from mailroom.config.redaction import redact_url
from mailroom.config.report import Problems, SettingsReport, attempt
from mailroom.config.transport import choose_transport
from mailroom.errors import SettingsError

__all__ = ["load_settings", "load_settings_report", "settings_from_mapping"]

# The package's name rather than this module's: it is the logger operators already filter
# settings warnings by, and where in the package the warning is raised is no concern of theirs.
logger = logging.getLogger("mailroom.config")


def _validation_errors(exc: ValidationError, layers: Layers) -> list[tuple[str, SettingsError]]:
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
        # Inside a table (NOTIFICATION_TYPES."task.assigned".stream), say where.
        inner = [str(part) for part in error["loc"][1:]]
        where = ".".join(f'"{part}"' if "." in part else part for part in inner)
        message = f"{where}: {error['msg']}" if where else str(error["msg"])
        out.append((name, SettingsError(name, f"{message}{shown}, from {source}")))
    return out


def _validate(
    values: dict[str, Any], layers: Layers, problems: Problems
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


def _resolve(
    config_path: str | os.PathLike[str] | None,
    environ: Mapping[str, str] | None,
    overrides: Mapping[str, Any],
    problems: Problems,
    *,
    read_files: bool = True,
) -> tuple[Settings, dict[str, Any]]:
    """Read every layer; the settings and the raw values refused (see :class:`Problems`)."""
    env = os.environ if environ is None else environ
    layers = gather(config_path, env, overrides, problems, read_files=read_files)
    values = dict(layers.values)
    transport = choose_transport(layers, problems)
    if transport is not None:
        values["MAILROOM_TRANSPORT"] = transport

    settings, rejected = _validate(values, layers, problems)
    settings._sources = dict(layers.sources)
    settings._warnings = (*layers.warnings, *layers.notices)
    for check in CHECKS:
        attempt(problems, lambda: check(settings))  # noqa: B023 - called at once
    for warning in layers.warnings:
        logger.warning(warning)
    for notice in layers.notices:
        if first_notice(notice):
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
    settings, _ = _resolve(config_path, environ, overrides, Problems(keep=False))
    return settings


def settings_from_mapping(values: Mapping[str, Any]) -> Settings:
    """Settings from ``values`` alone, checked as :func:`load_settings` checks them: no
    settings file, secrets file or environment is read (a host framework's settings, such as
    Django's, are the one source)."""
    settings, _ = _resolve(None, {}, values, Problems(keep=False), read_files=False)
    return settings


def load_settings_report(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> SettingsReport:
    """Like :func:`load_settings`, but every problem is collected instead of raised."""
    problems = Problems(keep=True)
    settings, rejected = _resolve(config_path, environ, overrides, problems)
    return SettingsReport(settings, rejected, tuple(problems.errors))
