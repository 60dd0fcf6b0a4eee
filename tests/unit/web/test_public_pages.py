"""The preference form's CSRF token."""

from __future__ import annotations

import time
from typing import Any
from unittest import mock

from mailroom.config import Settings, load_settings
from mailroom.web.public_pages import CSRF_MAX_AGE, check_csrf, make_csrf

SECRET = "public-pages-test-secret-0123456789-abcdef"


def settings_for(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"SECRET_KEY": SECRET, **overrides}
    return load_settings(None, {}, **values)


def test_a_csrf_token_is_bound_to_its_page_token_and_short_lived() -> None:
    settings = settings_for()
    csrf = make_csrf(settings, "page-token-1")
    assert check_csrf(settings, "page-token-1", csrf)
    assert not check_csrf(settings, "page-token-2", csrf)
    assert not check_csrf(settings_for(SECRET_KEY=SECRET + "x"), "page-token-1", csrf)
    # A character inside the signature, not its last: the last one's low bits are base64's
    # padding, so some changes to it decode to the same signature.
    flipped = csrf[:-4] + ("A" if csrf[-4] != "A" else "Q") + csrf[-3:]
    for bad in (None, "", "forged", flipped, ["x"]):
        assert not check_csrf(settings, "page-token-1", bad)
    later = time.time() + CSRF_MAX_AGE + 5
    with mock.patch("time.time", return_value=later):
        assert not check_csrf(settings, "page-token-1", csrf)
