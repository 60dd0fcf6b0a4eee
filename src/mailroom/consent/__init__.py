"""Consent: who may be mailed, and what they agreed to.

One home for the question every sender asks — notifications at enqueue, the worker at claim,
and later campaigns, bounce processing and the public endpoints:

- :mod:`~mailroom.consent.scopes`: the scope vocabulary (``all``, ``type:<name>``,
  ``list:<name>``) and the normalised form addresses are compared in;
- :mod:`~mailroom.consent.tokens`: signed unsubscribe tokens and their URL;
- :mod:`~mailroom.consent.suppression`: the suppression list and its checks at enqueue and
  at claim;
- :mod:`~mailroom.consent.listing`: the suppression list a page at a time, for people;
- :mod:`~mailroom.consent.preferences`: per-recipient, per-type email on/off;
- :mod:`~mailroom.consent.unsubscribe`: what a public unsubscribe endpoint calls;
- :mod:`~mailroom.consent.queries`: their SQL (suppression list, preferences, consent log).

Every change of consent is appended to the consent log, kept as evidence.
"""

from __future__ import annotations

from mailroom.consent.listing import SuppressionEntry, list_suppressions
from mailroom.consent.preferences import EmailChoice, email_choices, set_email_preference
from mailroom.consent.scopes import SCOPE_ALL, list_scope, normalize_address, type_scope
from mailroom.consent.suppression import (
    suppress,
    suppressed_among,
    suppressed_for_messages,
    unsuppress,
)
from mailroom.consent.tokens import TokenClaim, UnsubscribeTokens, unsubscribe_url
from mailroom.consent.unsubscribe import UnsubscribeResult

# The function unsubscribe is not re-exported: bound here, that name would hide the
# submodule mailroom.consent.unsubscribe. Import it from there.

__all__ = [
    "SCOPE_ALL",
    "EmailChoice",
    "SuppressionEntry",
    "TokenClaim",
    "UnsubscribeResult",
    "UnsubscribeTokens",
    "email_choices",
    "list_scope",
    "list_suppressions",
    "normalize_address",
    "set_email_preference",
    "suppress",
    "suppressed_among",
    "suppressed_for_messages",
    "type_scope",
    "unsubscribe_url",
    "unsuppress",
]
