"""CSS inlining: many mail readers (Gmail's apps among them) drop ``<style>`` blocks, so each
rule is copied into the ``style`` attribute of the elements it matches (by css-inline).

Remote stylesheets are never fetched: templates can be edited by staff in the UI, and a
``<link href="http://169.254.169.254/...">`` must not make the server issue requests.
``@media`` rules cannot be inlined; they stay in a ``<style>`` block for readers that honour it.

css-inline has no time limit, and its work grows with the CSS times the elements (every rule
is matched against every element, and an element gets the declarations of every rule that
matches it: 1,000 rules that all match 5,000 elements make 60 MB in 14 s). A template's HTML
is therefore refused when its ``<style>`` text times its number of elements is over
:data:`MAX_INLINE_WORK`, about a second of work; an ordinary email (10 kB of CSS, 1,000
elements) is well under it.
"""

from __future__ import annotations

import re

import css_inline

from mailroom.errors import TemplateError

__all__ = ["MAX_INLINE_WORK", "inline_css"]

#: Most characters of ``<style>`` text times HTML elements that are inlined.
MAX_INLINE_WORK = 10_000_000

_STYLE = re.compile(r"<style\b[^>]*>(.*?)</style\s*>", re.IGNORECASE | re.DOTALL)
_ELEMENT = re.compile(r"<[A-Za-z]")

_INLINER = css_inline.CSSInliner(
    load_remote_stylesheets=False,
    keep_at_rules=True,
)


def inline_css(html: str, *, template: str = "html") -> str:
    """``html`` with its ``<style>`` rules moved into ``style`` attributes."""
    if "<style" not in html.lower():
        return html  # nothing to inline; keep the author's markup byte for byte
    css = sum(len(match[1]) for match in _STYLE.finditer(html))
    elements = len(_ELEMENT.findall(html))
    if css * elements > MAX_INLINE_WORK:
        raise TemplateError(
            template,
            f"html: {css:,} characters of <style> rules for {elements:,} elements are too many "
            f"to inline (the most is {MAX_INLINE_WORK:,} characters times elements); "
            "shorten the CSS or the HTML",
        )
    try:
        return _INLINER.inline(html)
    except css_inline.InlineError as exc:
        raise TemplateError(template, f"its CSS could not be inlined: {exc}") from None
