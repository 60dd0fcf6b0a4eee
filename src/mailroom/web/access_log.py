"""Keeps the public endpoints' tokens out of uvicorn's access log.

The token in ``/unsubscribe/<token>``, ``/preferences/<token>``, ``/trck/<token>`` and
``/c/<token>`` is a credential (the unsubscribe token opens the preference centre), and
``mailroom -v serve`` logs every request's path. :class:`TokenPathFilter`, on the
``uvicorn.access`` logger, writes ``…`` in the token's place; the rest of the line is kept.
"""

from __future__ import annotations

import logging
import re

__all__ = ["ACCESS_LOGGER", "TokenPathFilter", "install_token_filter"]

ACCESS_LOGGER = "uvicorn.access"

_TOKEN_PATH = re.compile(r"(/(?:unsubscribe|preferences|trck|c)/)[^?#\s]*")


def _masked(value: object) -> object:
    return _TOKEN_PATH.sub(r"\1…", value) if isinstance(value, str) else value


class TokenPathFilter(logging.Filter):
    """Rewrites an access record's path (and message) with its token replaced by ``…``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_masked(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _masked(arg) for key, arg in record.args.items()}
        if isinstance(record.msg, str):
            record.msg = _TOKEN_PATH.sub(r"\1…", record.msg)
        return True


def install_token_filter(logger_name: str = ACCESS_LOGGER) -> None:
    """Put the filter on the access logger, once however often it is called."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, TokenPathFilter) for f in logger.filters):
        logger.addFilter(TokenPathFilter())
