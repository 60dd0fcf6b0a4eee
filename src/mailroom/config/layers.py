"""The layers settings come from, gathered in their one documented order (lowest first):
defaults < settings file < secrets file < environment < overrides. Within one layer, an
explicit setting beats a value taken from that layer's ``EMAIL_URL``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mailroom.config.email_url import expand_email_url
from mailroom.config.environment import misspelt_variables, read_environment
from mailroom.config.files import (
    canonical_keys,
    locate_secrets_file,
    password_warning,
    read_secrets_file,
    read_settings_file,
    settings_file_path,
)
from mailroom.config.model import TRANSPORT_SETTINGS
from mailroom.config.report import Problems, attempt

__all__ = ["Layers", "TransportChoice", "gather"]


@dataclass(frozen=True)
class TransportChoice:
    """One layer's word on the transport."""

    setting: str
    """``MAILROOM_TRANSPORT`` or ``EMAIL_BACKEND`` as given, or ``EMAIL_URL``."""
    value: Any
    source: str
    """The layer: a file path, ``environment``, ``overrides``."""


@dataclass
class Layers:
    """Raw values gathered from each layer, and where each came from."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    transport: list[TransportChoice] = field(default_factory=list)
    """Every word on the transport in the order read, so the last one is the highest layer's:
    its two names are one setting, which a plain value per name could not rank."""
    warnings: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    """Warnings logged once per process (misspelt environment variables)."""

    def put(self, values: Mapping[str, Any], source: str) -> None:
        for key, value in values.items():
            if key in TRANSPORT_SETTINGS:
                self.transport.append(TransportChoice(key, value, source))
                continue
            self.values[key] = value
            self.sources[key] = source

    def apply(self, values: dict[str, Any], source: str, problems: Problems) -> None:
        """Add one layer: its ``EMAIL_URL`` first, then its explicit settings on top."""
        url = values.pop("EMAIL_URL", None)
        if url:
            expanded = attempt(problems, lambda: expand_email_url(str(url), source)) or {}
            transport = expanded.pop("MAILROOM_TRANSPORT", None)
            if transport is not None:
                self.transport.append(TransportChoice("EMAIL_URL", transport, source))
            self.put(expanded, f"EMAIL_URL in {source}")
        self.put(values, source)


def gather(
    config_path: str | os.PathLike[str] | None,
    env: Mapping[str, str],
    overrides: Mapping[str, Any],
    problems: Problems,
    *,
    read_files: bool = True,
) -> Layers:
    """Every layer's raw values, lowest first (see the module docstring). ``read_files=False``
    leaves out the settings and secrets files (a host framework's settings are the source)."""
    layers = Layers()
    settings_file, named = settings_file_path(config_path, env)
    if read_files and (named or settings_file.exists()):
        from_file = attempt(problems, lambda: read_settings_file(settings_file, problems)) or {}
        warning = password_warning(from_file, settings_file)
        if warning:
            layers.warnings.append(warning)
        layers.apply(from_file, str(settings_file.absolute()), problems)

    named_there = None
    if "SECRETS_FILE" in layers.values:
        named_there = layers.values["SECRETS_FILE"], layers.sources["SECRETS_FILE"]
    located = locate_secrets_file(env, overrides, settings_file, named_there)
    if read_files and located is not None:
        secrets_file, named_by = located
        layers.put({"SECRETS_FILE": secrets_file}, named_by)
        secrets = attempt(problems, lambda: read_secrets_file(secrets_file)) or {}
        layers.put(secrets, f"secrets file {secrets_file.absolute()}")

    layers.notices.extend(misspelt_variables(env))
    layers.apply(read_environment(env), "environment", problems)
    if overrides:
        layers.apply(canonical_keys(overrides, "overrides", problems), "overrides", problems)
    return layers
