"""CSS inlining: many mail readers (Gmail's apps among them) drop ``<style>`` blocks, so each
rule is copied into the ``style`` attribute of the elements it matches (by css-inline).

Remote stylesheets are never fetched: templates can be edited by staff in the UI, and a
``<link href="http://169.254.169.254/...">`` must not make the server issue requests.
``@media`` rules cannot be inlined; they stay in a ``<style>`` block for readers that honour it.

css-inline has no time limit, and its work has two parts (measured):

- matching: every rule is tried on every element, so it grows with the ``<style>`` text times
  the elements (complex selectors: about 2 ns per character times element, 780 M in 1.7 s);
- merging: an element gets the declarations of every rule that matches it, merged one by one
  into its ``style``, quadratic in that element's declarations (300 declarations that all match
  4,000 elements, 360 M, take 1.8 s and make 12 MB).

So a template's HTML is refused, before inlining, when its ``<style>`` text times its elements
is over :data:`MAX_INLINE_CHARS`, or when the sum over its elements of the declarations that
may reach each one, squared, is over :data:`MAX_INLINE_MERGES`. Which declarations may reach
an element is over-estimated cheaply: a rule is filed under one part of its last compound
selector (its id, else its first class, else its tag, else "any element"), and an element
counts every rule filed under its id, one of its classes, its tag or "any element" (the HTML is
read for this as the parser reads it: quoted values, comments, <script> text). Ancestors,
attributes and pseudo-classes are ignored; a selector this rough reading cannot trust
(escapes, namespaces, ``tbody`` and others the parser adds unwritten) is counted for every
element, and so is every ';' of CSS it cannot read (escapes, an unclosed string, comment or
block), so the estimate stays above what css-inline does. Each bound is about 1-1.5 s at
worst; an ordinary order email (5 kB of CSS in 100 rules, a 2,000-row table of 18,000
elements) is far within both.
"""

from __future__ import annotations

import re
from collections import Counter
from html import unescape

import css_inline

from mailroom.errors import TemplateError

__all__ = ["MAX_INLINE_CHARS", "MAX_INLINE_MERGES", "inline_css"]

#: Most characters of ``<style>`` text times HTML elements that are inlined.
MAX_INLINE_CHARS = 500_000_000
#: Most declarations that may reach an element, squared, summed over the elements.
MAX_INLINE_MERGES = 300_000_000

# The HTML parser ends a <style> at "</style" and a space, '/' or '>' (or at the end).
_STYLE = re.compile(r"<style\b[^>]*>(.*?)(?:</style[\s/>]|\Z)", re.IGNORECASE | re.DOTALL)
_ELEMENT = re.compile(r"<[A-Za-z]")
# The HTML is read as the parser does, roughly, so what a comment, a quoted attribute value
# or a <script> holds is not taken for elements, nor an element for part of one of them.
_MARKUP = re.compile(r"<(?:(!--)|(/?)[A-Za-z]|[!?/])")
# A tag's name and attributes, read past a '>' in a quoted value (a quote opens a value only
# after '='). Possessive: a tag with no '>' after it fails at once instead of backtracking.
_TAG = re.compile(r"""([A-Za-z][^\s/>]*+)((?:[^>=]++|=\s*+"[^"]*+"|=\s*+'[^']*+'|=)*+)>""")
_COMMENT_END = re.compile(r"-?->|.*?--!?>", re.DOTALL)
# Elements whose content is text up to their end tag.
_RAW_TEXT = frozenset(
    {"script", "style", "title", "textarea", "xmp", "iframe", "noembed", "noframes"}
)
# One attribute: its name, and its value quoted or not (a quoted value may hold "class=").
_ATTRIBUTE = re.compile(r"""([^\s/>=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]*))?""")
# Elements the HTML parser adds where the markup has none (a <tbody> in each <table>): a rule
# for one of them is counted for every element.
_IMPLIED = frozenset({"html", "head", "body", "tbody"})
# A rule: its selectors and its body (rules nested in @media are read as rules: an over-count).
_RULE = re.compile(r"([^{}]*)\{([^{}]*)\}")
# Comments and strings, left to right (a string may hold "/*" or a brace, a comment quotes).
_COMMENT_OR_STRING = re.compile(r"""/\*.*?\*/|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'""", re.DOTALL)
# Parentheses (``:not(.a)``) and attribute selectors constrain nothing this estimate counts on.
_ARGUMENTS = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")
_COMBINATORS = re.compile(r"\s*[\s>+~]\s*")
_SIMPLE = re.compile(r"([#.]?)(-?[A-Za-z_][\w-]*)")

_ANY = ("*", "")

_INLINER = css_inline.CSSInliner(
    load_remote_stylesheets=False,
    keep_at_rules=True,
)


def _declarations(body: str) -> int:
    # A ';' may also sit in a url() or a string: counting it over-estimates, which is safe.
    return sum(1 for part in body.split(";") if ":" in part)


def _key(selector: str) -> tuple[str, str]:
    """Where a selector's rule is filed: ("#", id), (".", class), ("tag", name) or _ANY."""
    compounds = [c for c in _COMBINATORS.split(selector.strip()) if c]
    if not compounds or "\\" in selector or "|" in selector:
        return _ANY
    last = compounds[-1].split(":", 1)[0]  # pseudo-classes narrow nothing we count on
    found = _SIMPLE.findall(last)
    # Lower-cased: HTML tags, and classes and ids in quirks mode, match ignoring case.
    for sigil in ("#", "."):
        for kind, name in found:
            if kind == sigil:
                return (sigil, name.lower())
    if found and not found[0][0] and last.startswith(found[0][1]):
        tag = found[0][1].lower()
        return _ANY if tag in _IMPLIED else ("tag", tag)
    return _ANY


def _declarations_by_key(css: str) -> Counter[tuple[str, str]]:
    by_key: Counter[tuple[str, str]] = Counter()
    flat = _COMMENT_OR_STRING.sub(lambda match: "" if match[0][0] == "/" else "0", css)
    if any(mark in flat for mark in "\\\"'") or "/*" in flat or flat.count("{") != flat.count("}"):
        # Escapes, an unclosed string, comment or block: this rough reading could miss
        # declarations, so every ';' and '}' counts as one, for every element.
        by_key[_ANY] = css.count(";") + css.count("}") + 1
        return by_key
    for rule_selectors, body in _RULE.findall(flat):
        count = _declarations(body)
        if not count:
            continue
        selectors = rule_selectors
        while (shorter := _ARGUMENTS.sub("", selectors)) != selectors:
            selectors = shorter
        for selector in selectors.split(","):
            by_key[_key(selector)] += count
    return by_key


def _class_and_id(attributes: str) -> tuple[str, str]:
    """An element's class and id attributes, lower-cased; the first of each counts, as in
    the HTML parser."""
    found: dict[str, str] = {}
    for raw_name, value in _ATTRIBUTE.findall(attributes):
        name = raw_name.lower()
        if name in ("class", "id") and name not in found:
            found[name] = unescape(value.strip("\"'") if value[:1] in "\"'" else value).lower()
    return found.get("class", ""), found.get("id", "")


def _merges(html: str, by_key: Counter[tuple[str, str]]) -> int:
    """An upper bound of the sum over elements of their matching declarations, squared."""
    anywhere = by_key[_ANY]
    total = 0
    position = 0
    while (mark := _MARKUP.search(html, position)) is not None:
        if mark[1]:  # a comment
            end = _COMMENT_END.match(html, mark.end())
            if end is None:
                break  # the parser reads the rest as this comment
            position = end.end()
            continue
        if mark[2] is None:  # <!doctype ...>, <?...>, </ ...>: up to the next '>'
            position = html.find(">", mark.end()) + 1
            if not position:
                break
            continue
        tag_match = _TAG.match(html, mark.end() - 1)
        if tag_match is None:
            break  # no '>' after it: the parser reads the rest as this unfinished tag
        position = tag_match.end()
        if mark[2]:  # an end tag
            continue
        tag, attributes = tag_match.groups()
        if tag.lower() in _RAW_TEXT:
            end_tag = re.compile(rf"</{re.escape(tag)}[\s/>]", re.IGNORECASE).search(html, position)
            position = end_tag.start() if end_tag is not None else len(html)
        count = anywhere + by_key[("tag", tag.lower())]
        if attributes.strip():
            classes, identifier = _class_and_id(attributes)
            count += sum(by_key[(".", name)] for name in set(classes.split()))
            count += by_key[("#", identifier.strip())]
        total += count * count
    return total


def inline_css(html: str, *, template: str = "html") -> str:
    """``html`` with its ``<style>`` rules moved into ``style`` attributes."""
    if "<style" not in html.lower():
        return html  # nothing to inline; keep the author's markup byte for byte
    css = "\n".join(match[1] for match in _STYLE.finditer(html))
    elements = len(_ELEMENT.findall(html))
    merges = 0
    if len(css) * elements <= MAX_INLINE_CHARS:
        merges = _merges(html, _declarations_by_key(css))
    if len(css) * elements > MAX_INLINE_CHARS or merges > MAX_INLINE_MERGES:
        raise TemplateError(
            template,
            f"html: {len(css):,} characters of <style> rules for {elements:,} elements are "
            f"too many to inline (the most is {MAX_INLINE_CHARS:,} characters times elements, "
            f"and {MAX_INLINE_MERGES:,} for the declarations that may reach each element, "
            f"squared, summed; here {merges:,}); shorten the CSS or the HTML",
        )
    try:
        return _INLINER.inline(html)
    except css_inline.InlineError as exc:
        raise TemplateError(template, f"its CSS could not be inlined: {exc}") from None
