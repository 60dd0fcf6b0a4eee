"""The footer every notification ends with: why the recipient gets it, and the visible link to
unsubscribe or change their email settings (RFC 8058 one-click is for mail readers; people need
a link they can see).

The text footer starts with the signature separator "-- " (RFC 3676 §4.3), so mail readers can
fold it away.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["Footer", "add_footer"]

_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Footer:
    """What a footer says: a reason line, and optionally a link with its label."""

    reason: str
    link_label: str | None = None
    link_url: str | None = None
    postal_address: str | None = None
    """The sender's postal address, on lines of its own (a campaign's, for CAN-SPAM)."""

    def text(self) -> str:
        lines = ["-- ", self.reason]
        if self.link_url:
            lines.append(f"{self.link_label or 'Email settings'}: {self.link_url}")
        lines.extend(self._address_lines())
        return "\n".join(lines) + "\n"

    def html(self) -> Markup:
        parts = [escape(self.reason)]
        if self.link_url:
            label = escape(self.link_label or "Email settings")
            parts.append(Markup('<a href="{}">{}</a>').format(self.link_url, label))
        parts.extend(escape(line) for line in self._address_lines())
        inner = Markup("<br>").join(parts)
        return Markup(
            '<div class="mailroom-footer" style="margin-top:24px;padding-top:12px;'
            'border-top:1px solid #ddd;color:#666;font-size:12px">{}</div>'
        ).format(inner)

    def _address_lines(self) -> list[str]:
        if not self.postal_address:
            return []
        return [line.strip() for line in self.postal_address.splitlines() if line.strip()]


def add_footer(text: str, html: str | None, footer: Footer) -> tuple[str, str | None]:
    """``text`` and ``html`` with the footer appended (in the html, before ``</body>``)."""
    text = text.rstrip("\n") + "\n\n" + footer.text()
    if html is None:
        return text, None
    block = str(footer.html())
    matches = list(_BODY_END.finditer(html))
    if matches:
        at = matches[-1].start()
        html = html[:at] + block + html[at:]
    else:
        html = html + block
    return text, html
