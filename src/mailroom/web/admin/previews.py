"""How the admin serves a message's own HTML (a sent message, captured mail, a template's
preview) to the sandboxed frames that show it.

The frame's ``sandbox=""`` attribute holds only inside the admin's page; the same URL opened on
its own as a tab is a page of the admin's site whose content a sender chose. So the answer
carries its own limits: the CSP ``sandbox`` directive (an opaque origin, no script, no form,
no top-level navigation, as in the frame), no form target and no ``<base>`` (a form posting a
password, or a ``<meta refresh>``, must not lead anywhere), nothing loaded from anywhere (a
remote image would tell the sender the mail was read): its own inline styles and ``data:``
images only; framed by the admin's pages alone.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["PREVIEW_CSP", "PREVIEW_HEADERS"]

PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
    "base-uri 'none'; frame-ancestors 'self'; sandbox"
)

PREVIEW_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": PREVIEW_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
