"""The ``mailroom`` command. Each module adds one family of subcommands to :data:`main`."""

# Imported for their side effect: each module registers its commands on ``main``.
from mailroom.cli import (  # noqa: F401
    apikeys,
    campaigns,  # bulk campaigns (issue 14)
    lists,  # mailing lists and their contacts (issue 14)
    outbox,
    queue,
    serve,
    settings_show,
    smtpd,  # the SMTP submission port (issue 13)
    streams,
    suppressions,
    testmail,
    users,
)
from mailroom.cli.base import main

__all__ = ["main"]
