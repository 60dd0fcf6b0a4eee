"""Link rewriting and the pixel at composition."""

from __future__ import annotations

from typing import Any

import lxml.html
import pytest

from mailroom.compose.tracking import apply_tracking
from mailroom.config import Settings, load_settings
from mailroom.errors import MessageError
from mailroom.message import Message
from mailroom.tracking.tokens import HitClaim, TokenKind, verify_public_token

BASE = "https://mail.acme.example"
UNSUBSCRIBE = f"{BASE}/unsubscribe/TOKEN123"
HTML = f"""<!DOCTYPE html>
<html><head><title>t</title></head><body>
<p><a href="https://shop.example/item?id=1&amp;ref=mail">first</a>
<a href="mailto:help@acme.example">write to us</a>
<a href="HTTP://docs.example/Guide">second</a>
<a href="https://shop.example/item?id=1&amp;ref=mail">first again</a>
<a href="{UNSUBSCRIBE}">unsubscribe</a>
<a href="{BASE}/preferences/TOKEN123">settings</a>
<a href="https://list.example/unsub?u=9">list unsubscribe</a>
<a href="/relative">relative</a><a href="tel:+441234">call</a><a>no href</a>
<a href="https://third.example/">third</a></p>
</body></html>"""


def settings_for(**overrides: Any) -> Settings:
    values = {"SECRET_KEY": "compose-tracking-secret-0123456789abcdef", "PUBLIC_BASE_URL": BASE}
    return load_settings(environ={}, **{**values, **overrides})


def message(**overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "to": ["Ada <Ada@Example.com>", "bob@example.com"],
        "subject": "Hello",
        "text": "Plain https://shop.example/item?id=1",
        "html": HTML,
        "from_email": "news@acme.example",
        "headers": {
            "List-Unsubscribe": "<https://list.example/unsub?u=9>, <mailto:u@acme.example>"
        },
    }
    return Message(**{**fields, **overrides})


def hrefs(html: str) -> list[str | None]:
    return [a.get("href") for a in lxml.html.document_fromstring(html).iter("a")]


def test_links_are_rewritten_in_order_and_the_untouchable_ones_are_not() -> None:
    settings = settings_for(TRACK_CLICKS="bulk")
    tracked, links = apply_tracking(message(), settings, "bulk")
    assert links == [
        "https://shop.example/item?id=1&ref=mail",
        "HTTP://docs.example/Guide",
        "https://third.example/",
    ]
    assert tracked.message_id is not None
    found = hrefs(tracked.html or "")
    rewritten = [href for href in found if href and href.startswith(f"{BASE}/c/")]
    claims = [
        verify_public_token(settings, TokenKind.CLICK, href.rsplit("/", 1)[1]) for href in rewritten
    ]
    assert [claim.link_index for claim in claims] == [0, 1, 0, 2]
    assert claims[0] == HitClaim(tracked.message_id, "ada@example.com", 0)
    assert "mailto:help@acme.example" in found
    assert UNSUBSCRIBE in found
    assert f"{BASE}/preferences/TOKEN123" in found
    assert "https://list.example/unsub?u=9" in found  # the List-Unsubscribe target
    assert "/relative" in found
    assert "tel:+441234" in found
    assert tracked.text == message().text  # the text part is not rewritten
    assert "<img" not in (tracked.html or "")  # opens are not tracked on this stream
    assert (tracked.html or "").startswith("<!DOCTYPE html>")


def test_the_pixel_goes_last_in_the_body() -> None:
    settings = settings_for(TRACK_OPENS="bulk,marketing")
    tracked, links = apply_tracking(message(), settings, "marketing")
    assert links is None  # clicks are not tracked here: nothing to store
    body = lxml.html.document_fromstring(tracked.html or "").find("body")
    assert body is not None
    pixel = body[-1]
    assert pixel.tag == "img"
    assert (pixel.get("width"), pixel.get("height"), pixel.get("alt")) == ("1", "1", "")
    src = pixel.get("src") or ""
    assert src.startswith(f"{BASE}/trck/")
    claim = verify_public_token(settings, TokenKind.OPEN, src.rsplit("/", 1)[1])
    assert claim == HitClaim(tracked.message_id or "", "ada@example.com", None)
    assert all(not (h or "").startswith(f"{BASE}/c/") for h in hrefs(tracked.html or ""))


def test_a_fragment_gets_a_body_for_its_pixel() -> None:
    settings = settings_for(TRACK_OPENS="bulk", TRACK_CLICKS="bulk")
    tracked, links = apply_tracking(
        message(html='<p>Hi <a href="https://x.example/a">a</a></p>'), settings, "bulk"
    )
    assert links == ["https://x.example/a"]
    assert "/trck/" in (tracked.html or "")
    assert "/c/" in (tracked.html or "")


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # off by default, for every stream
        {"TRACK_OPENS": "bulk", "TRACK_CLICKS": "bulk"},  # on for another stream only
        {"TRACK_OPENS": "transactional", "PUBLIC_BASE_URL": ""},  # nowhere to point at
    ],
)
def test_nothing_changes_where_tracking_is_not_asked_for(overrides: dict[str, Any]) -> None:
    original = message()
    tracked, links = apply_tracking(original, settings_for(**overrides), "transactional")
    assert tracked is original
    assert links is None


def test_a_message_keeps_its_own_message_id_and_text_only_mail_is_left_alone() -> None:
    settings = settings_for(TRACK_OPENS="bulk", TRACK_CLICKS="bulk")
    tracked, _ = apply_tracking(message(message_id="<own.1@acme.example>"), settings, "bulk")
    assert tracked.message_id == "<own.1@acme.example>"
    plain = message(html=None)
    assert apply_tracking(plain, settings, "bulk") == (plain, [])


XHTML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
    '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">'
    '<html xmlns="http://www.w3.org/1999/xhtml"><body>'
    '<a href="https://shop.example/">Shop £5</a></body></html>'
)


def test_an_xhtml_template_with_an_xml_declaration_is_tracked() -> None:
    settings = settings_for(TRACK_OPENS="bulk", TRACK_CLICKS="bulk")
    tracked, links = apply_tracking(message(html=XHTML), settings, "bulk")
    assert links == ["https://shop.example/"]
    assert tracked.html is not None
    assert f"{BASE}/trck/" in tracked.html
    assert f'href="{BASE}/c/' in tracked.html
    assert tracked.html.startswith("<!DOCTYPE html PUBLIC")  # its doctype kept, not the xml
    assert "Shop £5" in tracked.html


def test_html_the_parser_cannot_read_is_a_message_error() -> None:
    settings = settings_for(TRACK_OPENS="bulk", TRACK_CLICKS="bulk")
    with pytest.raises(MessageError, match="HTML part"):
        apply_tracking(message(html="  \n "), settings, "bulk")
