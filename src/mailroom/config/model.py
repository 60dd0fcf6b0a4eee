"""The settings model: :class:`Settings` (frozen, typed, secrets masked) and the transport
names, with the vocabularies other modules read the settings by."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, SecretStr, field_validator

from mailroom.config.parsers import address_list, name_list, path_list
from mailroom.config.redaction import redact_url
from mailroom.errors import SettingsError

__all__ = [
    "SECRET_SETTINGS",
    "SETTING_NAMES",
    "TRANSPORT_SETTINGS",
    "URL_SETTINGS",
    "Backend",
    "NotificationTypeSetting",
    "Settings",
    "TrackingIP",
    "TransportName",
]


class TransportName(StrEnum):
    """Where messages go (``MAILROOM_TRANSPORT``, or ``EMAIL_BACKEND`` outside Django)."""

    SMTP = "smtp"
    """A real relay over SMTP."""
    CONSOLE = "console"
    """Printed to standard output."""
    FILE = "file"
    """One ``.eml`` file per message under ``EMAIL_FILE_PATH``."""
    MEMORY = "memory"
    """Kept in a list in the process, for tests."""
    NULL = "null"
    """Accepted and thrown away."""
    CAPTURE = "capture"
    """Kept in the outbox database's captured-mail table (``CAPTURE_MAX_MESSAGES`` at most),
    where the API shows it. The default: with no settings at all, ``mailroom serve`` and any
    ``mailroom worker`` beside it deliver here, and nothing leaves the machine."""


class TrackingIP(StrEnum):
    """How much of a tracking hit's IP address is kept (``TRACKING_IP``)."""

    TRUNCATE = "truncate"
    """The network only: the last octet of IPv4, the last 80 bits of IPv6 zeroed."""
    FULL = "full"
    """The whole address."""
    NONE = "none"
    """Nothing."""


class NotificationTypeSetting(BaseModel):
    """One ``[notification_types."NAME"]`` table of the settings file: a notification type
    the service offers (``POST /api/v1/notifications``), as ``mailroom.register`` would."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    template: str
    stream: str = "transactional"
    default_on: bool = True
    may_opt_out: bool = True
    description: str = ""


Backend = TransportName
"""The old name of :class:`TransportName`, kept for this release."""

SECRET_SETTINGS = frozenset({"EMAIL_HOST_PASSWORD", "MAILROOM_ADMIN_PASSWORD", "SECRET_KEY"})


class Settings(BaseModel):
    """Mailroom's resolved settings. Build with :func:`mailroom.config.load_settings`."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=False)

    MAILROOM_TRANSPORT: TransportName = TransportName.CAPTURE
    EMAIL_HOST: str = "localhost"
    EMAIL_PORT: int | None = None
    EMAIL_HOST_USER: str = ""
    EMAIL_HOST_PASSWORD: SecretStr = SecretStr("")
    EMAIL_USE_TLS: bool = False
    EMAIL_USE_SSL: bool = False
    EMAIL_TIMEOUT: float = 30.0
    EMAIL_SSL_CERTFILE: Path | None = None
    EMAIL_SSL_KEYFILE: Path | None = None
    EMAIL_SSL_CAFILE: Path | None = None
    EMAIL_LOCAL_HOSTNAME: str | None = None
    DEFAULT_FROM_EMAIL: str = "webmaster@localhost"
    NOREPLY_EMAIL_ADDRESS: str | None = None
    EMAIL_FILE_PATH: Path = Path("mailroom-mail")
    EMAIL_MAX_MESSAGE_SIZE: int = 25 * 1024 * 1024
    EMAIL_MAX_RECIPIENTS_PER_MESSAGE: int = 100
    SECRETS_FILE: Path | None = None

    DATABASE_URL: str = "sqlite:///mailroom.db"
    EMAIL_MAX_ATTEMPTS: int = 3
    EMAIL_MAX_AGE: float = 2 * 24 * 3600.0
    EMAIL_RETRY_DELAY: float = 60.0
    EMAIL_BURST: int = 0
    EMAIL_BURST_PAUSE: float = 0.0
    EMAIL_RATE_LIMIT: str = ""
    WORKER_CONCURRENCY: int = 4
    WORKER_BATCH_SIZE: int = 250
    WORKER_MAX_BATCH_BYTES: int = 64 * 1024 * 1024
    WORKER_LEASE_SECONDS: float = 300.0
    WORKER_POLL_INTERVAL: float = 0.05
    WORKER_PROCESSES: int = 1
    WORKER_EVENT_LOOP: str = "auto"
    WORKER_SHUTDOWN_GRACE: float = 10.0
    SEND_LOG_FILE: Path | None = None
    ERROR_LOG_FILE: Path | None = None

    # Notifications (see README, "Notifications").
    SECRET_KEY: SecretStr = SecretStr("")
    EMAIL_SUBJECT_PREFIX: str = ""
    SERVER_EMAIL: str | None = None
    ADMINS: tuple[str, ...] = ()
    EMAIL_FALLBACK_TO: tuple[str, ...] = ()
    ADD_TOKENS_TO_NOREPLY_ADDRESS: bool = True
    FRONTEND_BASE_URL: str = ""
    PUBLIC_BASE_URL: str = ""
    UNSUBSCRIBE_EMAIL_ADDRESS: str | None = None
    UNSUBSCRIBE_TOKEN_MAX_AGE: float = 365 * 24 * 3600.0
    EMAIL_TEMPLATE_DIRS: tuple[Path, ...] = ()
    NOTIFICATION_TYPE_HEADER: str = "X-Mailroom-Notification-Type"
    TEMPLATE_RENDER_TIMEOUT: float = 2.0
    TEMPLATE_MAX_OUTPUT_CHARS: int = 5_000_000
    NOTIFICATION_TYPES: Mapping[str, NotificationTypeSetting] = {}

    # The service (see README, "The service").
    CAPTURE_MAX_MESSAGES: int = 1000
    TRACK_OPENS: tuple[str, ...] = ()
    TRACK_CLICKS: tuple[str, ...] = ()
    TRACKING_IP: TrackingIP = TrackingIP.TRUNCATE
    API_MAX_BODY_BYTES: int = 40 * 1024 * 1024
    API_MAX_BATCH_SIZE: int = 1000
    FORWARDED_ALLOW_IPS: tuple[str, ...] = ()

    # The admin pages: the account ``serve`` makes on its first start when there is none
    # (with a generated password, printed once, when no password is set).
    MAILROOM_ADMIN_USER: str = "admin"
    MAILROOM_ADMIN_PASSWORD: SecretStr = SecretStr("")

    # --- SMTP submission port (`mailroom smtpd`; README, "SMTP submission") -------------
    SMTPD_HOST: str = "127.0.0.1"
    SMTPD_PORT: int = 2525
    SMTPD_TLS_CERTFILE: Path | None = None
    SMTPD_TLS_KEYFILE: Path | None = None
    SMTPD_MAX_MESSAGE_SIZE: int | None = None
    """Bytes; unset: ``EMAIL_MAX_MESSAGE_SIZE``."""
    SMTPD_MAX_RECIPIENTS: int = 100
    SMTPD_RATE_LIMIT: int = 0
    """Messages a minute per API key (per address for trusted networks); 0: no limit."""
    SMTPD_TRUSTED_NETWORKS: tuple[str, ...] = ()
    SMTPD_STREAM: str = "transactional"
    SMTPD_SHUTDOWN_GRACE: float = 10.0
    SMTPD_MAX_CONNECTIONS: int = 200
    """Connections open at once; one more is told ``421`` and closed."""
    SMTPD_MAX_CONNECTIONS_PER_CLIENT: int = 50
    """Connections open at once from one address (Postfix's
    ``smtpd_client_connection_count_limit``); ``SMTPD_TRUSTED_NETWORKS`` are exempt."""
    _split_smtpd_networks = field_validator("SMTPD_TRUSTED_NETWORKS", mode="before")(name_list)
    # --- end of SMTP submission port ---------------------------------------------------------

    # --- Bulk campaigns (README, "Bulk campaigns") ---------------------------------------
    ORGANIZATION_POSTAL_ADDRESS: str = ""
    """The sender's postal address, in every campaign's footer; a campaign cannot be sent
    without it (CAN-SPAM, 15 U.S.C. 7704(a)(5)(A)(iii))."""
    EMAILS_PER_TASK: int = 100
    """Recipients composed and queued together: one transaction, one Celery task."""
    CAMPAIGN_STREAM: str = "bulk"
    CAMPAIGN_QUEUE_AHEAD: int = 2000
    """Campaign messages waiting in the outbox of a stream at most: the rest of the audience
    waits in the ledger, so a pause takes back little and new mail is never behind a million."""
    CAMPAIGN_MAX_FAILURE_RATE: float = 0.2
    """A campaign whose failed share of its outcomes passes this pauses itself."""
    CAMPAIGN_FAILURE_SAMPLE: int = 100
    """The last outcomes (sent or failed) a campaign's failure rate is judged on."""
    CAMPAIGN_FANOUT: str = "worker"
    """Who fans campaigns out and queues their batches: ``worker`` (every ``mailroom worker``
    and ``serve``'s embedded one) or ``celery`` (the ``mailroom.campaign_batches`` task)."""
    # --- end of bulk campaigns -----------------------------------------------------------

    _sources: Mapping[str, str] = PrivateAttr(default_factory=dict)
    _warnings: tuple[str, ...] = PrivateAttr(default=())

    _split_addresses = field_validator("ADMINS", "EMAIL_FALLBACK_TO", mode="before")(address_list)
    _split_paths = field_validator("EMAIL_TEMPLATE_DIRS", mode="before")(path_list)
    _split_names = field_validator(
        "TRACK_OPENS", "TRACK_CLICKS", "FORWARDED_ALLOW_IPS", mode="before"
    )(name_list)

    @property
    def EMAIL_BACKEND(self) -> TransportName:  # noqa: N802 - named as the setting it reads
        """``MAILROOM_TRANSPORT`` by its older name, which is still read outside Django."""
        return self.MAILROOM_TRANSPORT

    @property
    def port(self) -> int:
        """``EMAIL_PORT``, or the port the chosen security implies: 465, 587 or 25."""
        if self.EMAIL_PORT is not None:
            return self.EMAIL_PORT
        if self.EMAIL_USE_SSL:
            return 465
        return 587 if self.EMAIL_USE_TLS else 25

    @property
    def noreply_address(self) -> str:
        """``NOREPLY_EMAIL_ADDRESS``, or ``noreply@`` the domain of ``DEFAULT_FROM_EMAIL``."""
        if self.NOREPLY_EMAIL_ADDRESS:
            return self.NOREPLY_EMAIL_ADDRESS
        # Strip first: in "Team <team@example.com> " the ">" is not the last character.
        address = self.DEFAULT_FROM_EMAIL.strip()
        domain = address.rpartition("@")[2].rstrip(">").strip() or "localhost"
        return f"noreply@{domain}"

    @property
    def server_email(self) -> str:
        """``SERVER_EMAIL`` (sender of error mail to ``ADMINS``), else ``DEFAULT_FROM_EMAIL``."""
        return self.SERVER_EMAIL or self.DEFAULT_FROM_EMAIL

    def secret_key(self, purpose: str) -> str:
        """``SECRET_KEY``, or a :class:`SettingsError` saying what needs it and how to set it."""
        key = self.SECRET_KEY.get_secret_value()
        if not key:
            raise SettingsError(
                "SECRET_KEY",
                f"is needed to {purpose} but is not set; put `secret_key = ...` in the secrets "
                "file or set the SECRET_KEY environment variable (make one with: python -c "
                "'import secrets; print(secrets.token_urlsafe(32))')",
            )
        return key

    def source_of(self, name: str) -> str:
        """Where a setting's value came from: ``default``, a file path, ``environment``..."""
        return self._sources.get(name, "default")

    @property
    def warnings(self) -> tuple[str, ...]:
        """Things that work but should be changed (a password in the settings file)."""
        return self._warnings

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # DATABASE_URL may carry a password; the repr (and str) show it masked.
        for name, value in super().__repr_args__():
            redact = name in URL_SETTINGS and isinstance(value, str)
            yield name, redact_url(value) if redact else value


TRANSPORT_SETTINGS = ("MAILROOM_TRANSPORT", "EMAIL_BACKEND")
"""The transport's name and its older one, which outside Django means the same."""

# Every name a deployment may set: the model's fields, and EMAIL_BACKEND beside the field
# it is another name for (config show lists them in this order).
SETTING_NAMES = tuple(
    name
    for field in Settings.model_fields
    for name in (TRANSPORT_SETTINGS if field == "MAILROOM_TRANSPORT" else (field,))
)
URL_SETTINGS = frozenset(name for name in SETTING_NAMES if name.endswith("_URL"))
"""Settings holding a URL, shown through :func:`redact_url` everywhere."""
