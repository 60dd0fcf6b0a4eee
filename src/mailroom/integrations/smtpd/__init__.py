"""``mailroom smtpd``: an SMTP submission port (RFC 6409) into the outbox, for applications
in any language.

A client submits over SMTP (STARTTLS, then AUTH PLAIN or LOGIN with a Mailroom API key as the
password); each message is committed to the durable outbox before the ``250``, and workers
deliver it like any other. The parts, one job each:

- :mod:`.handler`: who may submit, what is taken, the commit before the ``250``;
- :mod:`.message_checks`: what a message must be, and the ``Date``/``Message-ID`` added;
- :mod:`.trace`: the ``Received`` field put on top of each message;
- :mod:`.protocol`: aiosmtpd's protocol, with its MAIL parameters and hot paths mended;
- :mod:`.connections`: ``SMTPD_MAX_CONNECTIONS`` and ``..._PER_CLIENT``;
- :mod:`.peers`: trusted networks and loopback;
- :mod:`.rate_limit`: ``SMTPD_RATE_LIMIT``;
- :mod:`.server`: the socket, TLS, and a stop in bounded time.

The commit itself is :mod:`mailroom.outbox.raw_submissions`.
"""

from mailroom.integrations.smtpd.server import ServeResult, serve

__all__ = ["ServeResult", "serve"]
