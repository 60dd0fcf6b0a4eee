"""Header fields: the refusals that stop header injection, and how a value is written.

CR, LF or NUL in any header field is refused (RFC 5322 §2.2); values written as they are
(file names, ids, types) may hold no control character at all. A value that is not plain
printable ASCII is written as RFC 2047 encoded words; a long one is folded at its blanks, so
that no line exceeds 998 octets (RFC 5322 §2.1.1). The caller's own header fields are checked
here too: a valid name, and none of those Mailroom sets itself.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from email.message import EmailMessage

from mailroom.errors import HeaderInjectionError, MessageError

__all__ = [
    "MAX_LINE_OCTETS",
    "check_extra_headers",
    "encoded_words",
    "fold_at_blanks",
    "is_plain_ascii",
    "refuse_control_characters",
    "refuse_line_breaks",
    "set_unstructured",
]

MAX_LINE_OCTETS = 998  # RFC 5322 §2.1.1, without the CRLF

_FORBIDDEN_IN_HEADERS = re.compile(r"[\r\n\x00]")
# RFC 5322 §2.2: a field name is printable US-ASCII except the colon. \Z, not $: "$" also
# matches before a trailing newline, which would let "X-Name\n" through.
_FIELD_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]+\Z")

# Headers that have their own argument, or that the MIME structure owns.
_RESERVED_HEADERS = {
    "from": "from_email",
    "to": "to",
    "cc": "cc",
    "bcc": "bcc",
    "reply-to": "reply_to",
    "subject": "subject",
    "date": "date",
    "message-id": "message_id",
    "mime-version": None,
    "content-type": None,
    "content-transfer-encoding": None,
}


def refuse_line_breaks(field_name: str, value: str) -> None:
    """Raise :class:`HeaderInjectionError` if a header value holds CR, LF or NUL."""
    if _FORBIDDEN_IN_HEADERS.search(value):
        raise HeaderInjectionError(
            field_name, "contains a line break or NUL character, which is not allowed in a header"
        )


# Characters the email package will not store in a header (it splits on them as line breaks)
# or would emit raw: C0/C1 controls, DEL and the Unicode line and paragraph separators.
_NEEDS_ENCODED_WORDS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_EW_CHUNK_OCTETS = 45  # 45 octets → 60 base64 characters; with =?utf-8?b?...?= under 75


def encoded_words(value: str) -> str:
    """Encode a whole value as RFC 2047 'B' encoded words, one per folded line.

    Used for every value that is not plain printable ASCII. Blanks sit inside the words, so
    they survive exactly (the email package's own refolding can collapse runs of them), and
    control characters, which it would refuse or emit raw, are carried safely. A chunk never
    splits a UTF-8 sequence (RFC 2047 §5 rule 3).
    """
    words: list[str] = []
    chunk = b""
    for char in value:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _EW_CHUNK_OCTETS:
            words.append(chunk.decode("utf-8"))
            chunk = b""
        chunk += encoded
    words.append(chunk.decode("utf-8"))
    return "\n ".join(f"=?utf-8?b?{base64.b64encode(w.encode()).decode()}?=" for w in words)


def refuse_control_characters(field_name: str, value: str) -> None:
    """For values written as they are (file names, ids, types): no controls at all.

    The email package treats several of them (VT, FF, FS, NEL, U+2028...) as line breaks
    and raises a bare ValueError, or drops them; the rest would be emitted raw.
    """
    refuse_line_breaks(field_name, value)
    if _NEEDS_ENCODED_WORDS.search(value):
        raise MessageError(field_name, "contains a control character, which is not allowed here")


_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]*$")


def is_plain_ascii(value: str) -> bool:
    """Whether ``value`` may be written as it is: printable ASCII, and nothing a reader would
    take for an encoded word (RFC 2047 §6.1 decodes literal ``=?utf-8?q?...?=`` text)."""
    return bool(_PRINTABLE_ASCII.match(value)) and "=?" not in value


def set_unstructured(mime: EmailMessage, name: str, value: str) -> None:
    """Set an unstructured header field (Subject, the caller's own) on ``mime``."""
    # Literal text that looks like an encoded word ("=?utf-8?q?...?=") would be decoded by
    # the reader (RFC 2047 §6.1); encoding the whole value keeps it as written.
    if not is_plain_ascii(value):
        mime.set_raw(name, encoded_words(value))
    elif any(len(word) > _FOLD_AT - len(name) - 2 for word in value.split(" ")):
        longest = max(map(len, value.split(" ")))
        if len(name) + 2 + longest <= MAX_LINE_OCTETS:
            mime.set_raw(name, fold_at_blanks(name, value))
        elif name == "Subject":
            # RFC 5322 §2.2.3 folds only at blanks, so a word too long for a 998-octet line
            # is carried in RFC 2047 encoded words, which a reader joins back (§6.2). A
            # subject is free text; the caller's own fields may be structured (below).
            mime.set_raw(name, encoded_words(value))
        else:
            raise MessageError(
                f"header {name}",
                f"has a word of {longest} characters, and a header line may hold "
                f"{MAX_LINE_OCTETS} octets (RFC 5322 §2.1.1); this field is folded only at "
                "blanks (its value may be structured, e.g. a URL): shorten it",
            )
    elif len(name) + 2 + len(value) > _FOLD_AT:
        # The email package's own folding can move a first word of specials (":::") to a
        # continuation line, which a reader then gives back with a leading blank.
        mime.set_raw(name, fold_at_blanks(name, value))
    else:
        mime[name] = value


_FOLD_AT = 78  # RFC 5322 §2.1.1's "SHOULD"; 998 is the limit that is checked
_BLANK_THEN_WORD = re.compile(r" *[^ ]+")


def fold_at_blanks(name: str, value: str) -> str:
    """Fold plain ASCII at its blanks only (RFC 5322 §2.2.3), however long a word is.

    The email package would turn a word too long for one line into encoded words, which a
    reader of a structured value never decodes: a List-Unsubscribe URL (RFC 2369) must stay as
    written. A word longer than 998 octets is caught by the line check in build_envelope.
    """
    pieces = _BLANK_THEN_WORD.findall(value)
    lines = [pieces[0]] if pieces else [""]
    width = len(name) + 2
    for piece in pieces[1:]:
        if width + len(lines[-1]) + len(piece) > _FOLD_AT:
            lines.append(piece)  # starts with its blank: the folding white space
            width = 0
        else:
            lines[-1] += piece
    return "\n".join(lines)


def check_extra_headers(headers: Mapping[str, str]) -> None:
    """The caller's own header fields: valid names, no line breaks, none Mailroom sets."""
    for name, value in headers.items():
        if not _FIELD_NAME.match(name):
            raise HeaderInjectionError(f"header {name!r}", "is not a valid header field name")
        refuse_line_breaks(f"header {name}", value)
        lowered = name.lower()
        if lowered in _RESERVED_HEADERS or lowered.startswith("content-"):
            argument = _RESERVED_HEADERS.get(lowered)
            hint = f"; pass {argument}= instead" if argument else "; Mailroom sets it"
            raise MessageError(f"header {name}", f"cannot be set through headers{hint}")
