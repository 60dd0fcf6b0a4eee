"""CSS inlining: many mail readers (Gmail's apps among them) drop ``<style>`` blocks, so each
rule is copied into the ``style`` attribute of the elements it matches (by css-inline).

Remote stylesheets are never fetched: templates can be edited by staff in the UI, and a
``<link href="http://169.254.169.254/...">`` must not make the server issue requests.
``@media`` rules cannot be inlined; they stay in a ``<style>`` block for readers that honour it.
"""

from __future__ import annotations

import css_inline

from mailroom.errors import TemplateError

__all__ = ["inline_css"]

_INLINER = css_inline.CSSInliner(
    load_remote_stylesheets=False,
    keep_at_rules=True,
)


def inline_css(html: str, *, template: str = "html") -> str:
    """``html`` with its ``<style>`` rules moved into ``style`` attributes."""
    if "<style" not in html.lower():
        return html  # nothing to inline; keep the author's markup byte for byte
    try:
        return _INLINER.inline(html)
    except css_inline.InlineError as exc:
        raise TemplateError(template, f"its CSS could not be inlined: {exc}") from None
