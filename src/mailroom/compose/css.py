"""CSS inlining: many mail readers (Gmail's apps among them) drop ``<style>`` blocks, so each
rule is copied into the ``style`` attribute of the elements it matches (by css-inline).

Remote stylesheets are never fetched: templates can be edited by staff in the UI, and a
``<link href="http://169.254.169.254/...">`` must not make the server issue requests.
``@media`` rules cannot be inlined; they stay in a ``<style>`` block for readers that honour it.

css-inline has no time limit, and its work grows with the CSS times the elements: every rule
is matched against every element (20,000 rules and 100,000 elements: over 20 s), and an element
gets the declarations of every rule that matches it, merged one by one into its ``style``
(quadratic: 1,400 declarations that all match 1,000 elements take 6.6 s and make 13 MB). So a
template's HTML is refused, before inlining, when its ``<style>`` text times its number of
elements is over :data:`MAX_INLINE_CHARS` (bounds the matching and the output), or its number
of declarations squared times its elements is over :data:`MAX_INLINE_MERGES` (bounds the
merging). Each is about a second at worst; an ordinary email (5 kB of CSS in 200 rules, 2,000
elements) is within both.
"""

from __future__ import annotations

import re

import css_inline

from mailroom.errors import TemplateError

__all__ = ["MAX_INLINE_CHARS", "MAX_INLINE_MERGES", "inline_css"]

#: Most characters of ``<style>`` text times HTML elements that are inlined.
MAX_INLINE_CHARS = 20_000_000
#: Most CSS declarations (counted by their ':'), squared, times HTML elements.
MAX_INLINE_MERGES = 300_000_000

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
    css = [match[1] for match in _STYLE.finditer(html)]
    size = sum(map(len, css))
    declarations = sum(text.count(":") for text in css)
    elements = len(_ELEMENT.findall(html))
    if size * elements > MAX_INLINE_CHARS or declarations**2 * elements > MAX_INLINE_MERGES:
        raise TemplateError(
            template,
            f"html: {size:,} characters of <style> rules ({declarations:,} declarations) for "
            f"{elements:,} elements are too many to inline (the most is "
            f"{MAX_INLINE_CHARS:,} characters times elements, and {MAX_INLINE_MERGES:,} "
            "declarations squared times elements); shorten the CSS or the HTML",
        )
    try:
        return _INLINER.inline(html)
    except css_inline.InlineError as exc:
        raise TemplateError(template, f"its CSS could not be inlined: {exc}") from None
