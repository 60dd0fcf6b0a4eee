"""For the settings tests: a distinctive password, checks that no text shown to anyone holds it
or a piece of it (every error, repr and warning must keep it hidden), and the type of the
``write`` fixture that puts a settings file in the test's folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from mailroom.errors import SettingsError

PASSWORD = "Tr0ub4dor-&-3-unique"

WriteFile = Callable[[str, str], Path]
"""``write(name, text)``: the file written under the test's folder."""


def assert_no_password(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert quote(PASSWORD, safe="") not in text
        # Nor a recognisable piece of it.
        assert "Tr0ub4dor" not in text
        assert "tr0ub4dor" not in text


def assert_settings_error_hides_password(exc: SettingsError) -> None:
    assert_no_password(str(exc), repr(exc), exc.setting, *(str(a) for a in exc.args))
