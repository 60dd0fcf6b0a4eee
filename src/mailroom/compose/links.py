"""Deep links into the application, built from ``FRONTEND_BASE_URL``.

With no base URL configured a link is ``None``, and templates leave the sentence out
(``{% if link %}...{% endif %}``) instead of printing a relative path no mail reader can open.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

from mailroom.errors import MessageError

__all__ = ["deep_link"]


def deep_link(
    base_url: str, path: str | None, query: Mapping[str, str | int] | None = None
) -> str | None:
    """``base_url`` + ``path`` (+ ``?query``), or ``None`` when either is missing.

    ``path`` is a path in the app (``/tasks/42``); a full URL is refused, so a value taken
    from user input cannot point a link at another site.
    """
    if not base_url or not path:
        return None
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or path.startswith("//"):
        raise MessageError("link", f"{path!r} must be a path in the app, not a full URL")
    url = base_url.rstrip("/") + "/" + path.lstrip("/")
    if query:
        url += ("&" if "?" in url else "?") + urlencode(dict(query))
    return url
