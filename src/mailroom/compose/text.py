"""The plain-text part, made from the HTML when a template gives none.

Rendering is inscriptis's (it lays out lists, tables and blocks as text); what is ours is
keeping links usable: ``<a href="https://x/t/1">the task</a>`` becomes ``the task
(https://x/t/1)``, and a link whose text is its own address is written once. Paragraphs are
wrapped at 78 characters (RFC 5322 §2.1.1's "SHOULD"), never inside a word, so a URL stays whole
and clickable.

inscriptis is pure Python and has no time limit: measured, about 1 s for a 4,000-row table
(36,000 elements) and up to about 2.5 s per 100,000 elements of other layouts. HTML of more than
:data:`MAX_TEXT_ELEMENTS` elements is refused (about 1.1 s as a table): such a template must
bring its own text body.
"""

from __future__ import annotations

import re
import textwrap

from inscriptis.html_engine import Inscriptis
from inscriptis.model.config import ParserConfig
from lxml import html as lxml_html
from lxml.etree import ParserError

from mailroom.errors import TemplateError

__all__ = ["MAX_TEXT_ELEMENTS", "html_to_text"]

#: Most HTML elements a text part is made from.
MAX_TEXT_ELEMENTS = 40_000
_ELEMENT = re.compile(r"<[A-Za-z]")

WRAP_WIDTH = 78

# Links worth spelling out in text; "#top" or "javascript:" are not useful to a reader.
_SHOWN_SCHEMES = ("http://", "https://", "mailto:")


def _spell_out_links(tree: lxml_html.HtmlElement) -> None:
    for anchor in tree.iter("a"):
        href = (anchor.get("href") or "").strip()
        if not href.lower().startswith(_SHOWN_SCHEMES):
            continue
        label = anchor.text_content().strip()
        shown = href.removeprefix("mailto:") if href.lower().startswith("mailto:") else href
        if label in (href, shown):
            continue
        # The address goes after the element, as its "tail" text, so the label keeps its
        # own formatting and the address reads as a parenthesis.
        anchor.tail = f" ({shown})" + (anchor.tail or "")


def _wrap(text: str) -> str:
    lines: list[str] = []
    for line in text.splitlines():
        if len(line) <= WRAP_WIDTH:
            lines.append(line.rstrip())
            continue
        indent = line[: len(line) - len(line.lstrip())]
        lines.extend(
            textwrap.wrap(
                line.strip(),
                width=WRAP_WIDTH,
                initial_indent=indent,
                subsequent_indent=indent,
                break_long_words=False,  # a URL broken in two is no longer a link
                break_on_hyphens=False,
            )
        )
    return "\n".join(lines)


def html_to_text(html: str, *, template: str = "html") -> str:
    """A readable plain-text rendering of ``html``: blocks, lists, tables, links spelled out.

    Raises :class:`TemplateError` naming ``template`` when ``html`` is too large to lay out.
    """
    if not html.strip():
        return ""
    elements = len(_ELEMENT.findall(html))
    if elements > MAX_TEXT_ELEMENTS:
        raise TemplateError(
            template,
            f"html: has {elements:,} elements, too many to make a text part from "
            f"(the most is {MAX_TEXT_ELEMENTS:,}); give the template a text body",
        )
    try:
        tree = lxml_html.document_fromstring(html)
    except ParserError:  # e.g. only a comment: nothing to render
        return ""
    for dropped in tree.xpath("//head|//style|//script"):
        dropped.drop_tree()
    _spell_out_links(tree)
    text = Inscriptis(tree, ParserConfig(display_links=False)).get_text()
    # Collapse the blank runs block layout leaves, and end with exactly one newline.
    paragraphs = [p for p in (block.strip("\n") for block in text.split("\n\n")) if p.strip()]
    return "\n\n".join(_wrap(p) for p in paragraphs) + "\n"
