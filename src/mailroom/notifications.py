"""Notification types and ``notify``: one call that composes and enqueues what an app sends most.

An application registers its types once::

    mailroom.register_notification_type(
        "task.assigned", template="task_assigned", stream="transactional",
        default_on=True, may_opt_out=True, description="A task was assigned to you",
    )
    mailroom.register_notification_type(
        "account.password_reset", template="password_reset", may_opt_out=False,
    )

and then, where the event happens::

    mailroom.notify("task.assigned", to=[assignee], actor=current_user,
                    context={"task": {"title": task.title}}, link=f"/tasks/{task.id}")

For each recipient ``notify`` checks preferences and the suppression list, renders the
template for them (their name, their unsubscribe link), adds the headers (subject prefix,
``Auto-Submitted``, notification type, ``List-Unsubscribe`` + one-click when the type may be
turned off and a public URL is configured), the footer, and a "Ada Lovelace via Acme" sender,
and commits one message per recipient to the outbox. A recipient without an address, who
turned the type off, who is suppressed, or who is the actor is not sent anything: the call does
not fail, and each such recipient is recorded in the notification log with the reason. So is a
recipient whose own message cannot be built (their address or name, a template error on their
data) or whose idempotency key was used for another request: one recipient's failure never
costs the others their mail. Only when such errors leave nobody sent to does the call raise.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from mailroom import headers
from mailroom.compose.footer import Footer, add_footer
from mailroom.compose.links import deep_link
from mailroom.compose.templates import Template, TemplateLibrary
from mailroom.consent.preferences import EmailChoice, email_choices
from mailroom.consent.scopes import SCOPE_ALL, normalize_address, type_scope
from mailroom.consent.suppression import suppressed_among
from mailroom.consent.tokens import UnsubscribeTokens, unsubscribe_url
from mailroom.errors import IdempotencyConflictError, MessageError, NotificationError
from mailroom.message import Address, Message, content_fingerprint, without_bidi_overrides
from mailroom.outbox import notification_queries as q
from mailroom.outbox.schema import ConsentFacts, NotificationOutcome
from mailroom.outbox.store import Outbox

__all__ = [
    "NotificationRegistry",
    "NotificationType",
    "Notifier",
    "NotifyResult",
    "Recipient",
    "RecipientOutcome",
    "default_registry",
    "notify",
    "register_notification_type",
]

logger = logging.getLogger(__name__)

_TYPE_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*(?:\.[a-z0-9_\-]+)*\Z")
_IDEMPOTENCY_KEY_MAX = 255


class SkipReason:
    """Why a recipient got nothing (``reason`` in the notification log)."""

    NO_ADDRESS = "no_address"
    """The recipient has no email address."""
    OPTED_OUT = EmailChoice.OPTED_OUT
    NOT_OPTED_IN = EmailChoice.NOT_OPTED_IN
    IS_ACTOR = "is_actor"
    """The recipient caused the event; people are not told about their own actions."""
    DUPLICATE = "duplicate"
    """The same address was named twice in one call; it gets one message."""
    NO_RECIPIENTS = "no_recipients"
    """The app named no one, and neither ADMINS nor EMAIL_FALLBACK_TO is set."""
    INVALID_ADDRESS = "invalid_address"
    """The recipient's address (or name) cannot be sent to; the warning logged says why."""
    INVALID_MESSAGE = "invalid_message"
    """The message for this recipient could not be built (a template error for their data,
    a field over a limit); the warning logged says why."""
    KEY_CONFLICT = "idempotency_conflict"
    """The idempotency key was already used for this address with a different request."""


@dataclass(frozen=True, slots=True)
class NotificationType:
    """A kind of notification the app sends.

    ``default_on``: whether email is on for recipients who never chose. ``may_opt_out``:
    whether recipients may turn it off (a password reset may not); such mail carries no
    ``List-Unsubscribe`` and ignores preferences and ``unsubscribed`` suppressions.
    """

    name: str
    template: str | Template
    stream: str = "transactional"
    default_on: bool = True
    may_opt_out: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if not _TYPE_NAME.match(self.name) or len(self.name) > 100:
            raise NotificationError(
                f"{self.name!r} is not a notification type name: lower-case words separated "
                "by dots, e.g. 'task.assigned' (at most 100 characters)"
            )
        if not self.may_opt_out and not self.default_on:
            raise NotificationError(
                f"{self.name}: a type recipients may not turn off must be on by default "
                "(default_on=True), or nobody would ever receive it"
            )

    @property
    def label(self) -> str:
        return self.description or self.name


class NotificationRegistry:
    """The notification types an app has registered, by name."""

    def __init__(self) -> None:
        self._types: dict[str, NotificationType] = {}
        self._lock = threading.Lock()

    def register(
        self,
        name: str,
        *,
        template: str | Template | None = None,
        stream: str = "transactional",
        default_on: bool = True,
        may_opt_out: bool = True,
        description: str = "",
    ) -> NotificationType:
        """Declare a type. ``template`` defaults to the type's name.

        Registering the same declaration again is harmless (a module imported twice); a
        different one under a registered name is an error.
        """
        declared = NotificationType(
            name, template or name, stream, default_on, may_opt_out, description
        )
        with self._lock:
            existing = self._types.get(name)
            if existing is not None and existing != declared:
                raise NotificationError(f"{name}: already registered with other settings")
            self._types[name] = declared
        return declared

    def get(self, name: str) -> NotificationType:
        """The type ``name``, or a :class:`NotificationError` listing the registered ones."""
        try:
            return self._types[name]
        except KeyError:
            known = ", ".join(sorted(self._types)) or "none yet"
            raise NotificationError(
                f"unknown notification type {name!r}; registered: {known} "
                "(register it with mailroom.register_notification_type)"
            ) from None

    def __iter__(self) -> Iterator[NotificationType]:
        return iter(list(self._types.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._types


default_registry = NotificationRegistry()
"""The registry behind :func:`register_notification_type` and :func:`notify`."""


def register_notification_type(
    name: str,
    *,
    template: str | Template | None = None,
    stream: str = "transactional",
    default_on: bool = True,
    may_opt_out: bool = True,
    description: str = "",
) -> NotificationType:
    """Declare a notification type in the default registry. See :class:`NotificationType`."""
    return default_registry.register(
        name,
        template=template,
        stream=stream,
        default_on=default_on,
        may_opt_out=may_opt_out,
        description=description,
    )


# -- recipients -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recipient:
    """Someone to notify: an address (maybe none), a name, and the app's key for them."""

    email: str | None
    name: str = ""
    key: str | None = None
    """The app's stable id for the person (``"user:42"``): preferences follow it when the
    address changes. Without it, preferences are kept by address."""

    @classmethod
    def of(cls, value: object) -> Recipient:
        """Accept a Recipient, an address string (``"Ada <ada@x>"``), an Address, or a user
        object with ``email`` and optionally ``get_full_name()``/``name`` and ``pk``/``id``
        (a Django user works as it is)."""
        if isinstance(value, Recipient):
            return value
        if isinstance(value, Address):
            return cls(value.addr_spec, value.display_name)
        if isinstance(value, str):
            address = Address.parse(value, "to")
            return cls(address.addr_spec, address.display_name)
        if value is None:
            return cls(None)
        email = getattr(value, "email", None)
        key = getattr(value, "pk", None) or getattr(value, "id", None)
        return cls(
            str(email) if email else None,
            _person_name(value),
            f"{type(value).__name__.lower()}:{key}" if key is not None else None,
        )

    def describe(self) -> str:
        """How the notification log names this recipient."""
        return self.email or self.key or self.name or "(unnamed recipient)"


def _person_name(value: object) -> str:
    if isinstance(value, str):
        return value
    full_name = getattr(value, "get_full_name", None)
    if callable(full_name):
        name = full_name()
        if name:
            return str(name)
    for attribute in ("name", "full_name", "display_name", "username"):
        name = getattr(value, attribute, None)
        if isinstance(name, str) and name:
            return name
    return ""


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    """What happened for one recipient."""

    recipient: str
    outcome: NotificationOutcome
    reason: str | None = None
    message_pk: int | None = None


@dataclass(frozen=True, slots=True)
class NotifyResult:
    """What one ``notify`` call did, recipient by recipient."""

    notification_type: str
    outcomes: tuple[RecipientOutcome, ...] = field(default_factory=tuple)

    @property
    def message_ids(self) -> list[int]:
        """The outbox ids of the messages committed."""
        return [o.message_pk for o in self.outcomes if o.message_pk is not None]

    @property
    def skipped(self) -> dict[str, str]:
        """Recipients not sent to (skipped or suppressed) → reason."""
        return {
            o.recipient: o.reason or ""
            for o in self.outcomes
            if o.outcome is not NotificationOutcome.QUEUED
        }


# -- the notifier ---------------------------------------------------------------------------


@dataclass
class _Planned:
    recipient: Recipient
    address: Address
    normalized: str
    key: str


class Notifier:
    """Composes notifications and commits them to an outbox."""

    def __init__(
        self,
        outbox: Outbox,
        registry: NotificationRegistry | None = None,
        templates: TemplateLibrary | None = None,
    ) -> None:
        self.outbox = outbox
        self.settings = outbox.settings
        self.registry = registry if registry is not None else default_registry
        base = self.settings.FRONTEND_BASE_URL

        def template_deep_link(path: str, **query: str | int) -> str | None:
            return deep_link(base, path, query)

        self.templates = templates or TemplateLibrary(
            self.settings.EMAIL_TEMPLATE_DIRS,
            engine=outbox.engine,
            globals_={"deep_link": template_deep_link},
            render_timeout=self.settings.TEMPLATE_RENDER_TIMEOUT,
            max_output_chars=self.settings.TEMPLATE_MAX_OUTPUT_CHARS,
        )

    def notify(
        self,
        notification_type: str,
        to: Iterable[object] | object = None,
        *,
        context: Mapping[str, Any] | None = None,
        actor: object = None,
        link: str | None = None,
        idempotency_key: str | None = None,
        send_at: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> NotifyResult:
        """Compose and enqueue ``notification_type`` for each recipient. See :func:`notify`."""
        ntype = self.registry.get(notification_type)
        context = dict(context or {})
        recipients, fallback = self._recipients(to)
        actor_person, actor_name = _actor(actor)
        now = time.time()
        outcomes: list[RecipientOutcome] = []

        failures: list[MessageError] = []
        planned = self._plan(recipients, actor_person, outcomes, failures, fallback=fallback)
        self.outbox.ensure_schema()
        with self.outbox.engine.connect() as connection:
            choices = email_choices(
                connection,
                (p.key for p in planned),
                ntype.name,
                default_on=ntype.default_on,
                may_opt_out=ntype.may_opt_out and not fallback,
            )
            scopes = [SCOPE_ALL, type_scope(ntype.name)]
            suppressed = suppressed_among(
                connection,
                (p.normalized for p in planned),
                scopes,
                now,
                required=not ntype.may_opt_out,
            )
        sending: list[_Planned] = []
        for plan in planned:
            if choices[plan.key] != EmailChoice.ON:
                outcomes.append(_skip(plan.recipient, choices[plan.key]))
            elif plan.normalized in suppressed:
                outcomes.append(
                    RecipientOutcome(
                        plan.recipient.describe(),
                        NotificationOutcome.SUPPRESSED,
                        suppressed[plan.normalized].value,
                    )
                )
            else:
                sending.append(plan)

        template = ntype.template
        if sending and isinstance(template, str):
            template = self.templates.get(template)  # once per call, not per recipient
        tokens = None
        # Mail to the fallback admins is not the admins' own subscription to turn off.
        if sending and ntype.may_opt_out and self.settings.PUBLIC_BASE_URL and not fallback:
            tokens = UnsubscribeTokens(self.settings)  # SettingsError if SECRET_KEY is unset
        # One recipient's message failing (their data in the template, a field over a limit)
        # must not cost the others theirs: it is recorded as skipped, with the reason.
        composed: list[tuple[_Planned, Message, str]] = []
        for plan in sending:
            try:
                message, token = self._compose(
                    plan,
                    ntype=ntype,
                    template=template,
                    tokens=tokens,
                    context=context,
                    actor_name=actor_name,
                    link=link,
                    metadata=metadata,
                    fallback=fallback,
                )
            except MessageError as exc:
                outcomes.append(_failed(plan.recipient, SkipReason.INVALID_MESSAGE, exc, failures))
                continue
            composed.append((plan, message, _fingerprint(message, token, ntype.stream)))
        self._commit(
            composed,
            ntype=ntype,
            send_at=send_at,
            idempotency_key=idempotency_key,
            outcomes=outcomes,
            failures=failures,
        )
        # The messages are committed; the log follows in its own transaction. A crash in
        # between loses log rows, never mail.
        self._log(ntype.name, outcomes, actor_name, now)
        if failures and not any(o.outcome is NotificationOutcome.QUEUED for o in outcomes):
            # Nobody got it because of an error (not a choice): that is the caller's to see,
            # as a broken template or bad input is.
            raise failures[0]
        return NotifyResult(ntype.name, tuple(outcomes))

    def _commit(
        self,
        composed: Sequence[tuple[_Planned, Message, str]],
        *,
        ntype: NotificationType,
        send_at: datetime | None,
        idempotency_key: str | None,
        outcomes: list[RecipientOutcome],
        failures: list[MessageError],
    ) -> None:
        """Commit the composed messages together; one that fails is skipped, not the rest."""
        if not composed:
            return
        keys = None
        if idempotency_key is not None:
            keys = [_recipient_key(idempotency_key, plan.normalized) for plan, _, _ in composed]
        results = self.outbox.send_each(
            [message for _, message, _ in composed],
            stream=ntype.stream,
            send_at=send_at,
            idempotency_keys=keys,
            fingerprints=[fingerprint for _, _, fingerprint in composed],
            consent=ConsentFacts((SCOPE_ALL, type_scope(ntype.name)), not ntype.may_opt_out),
        )
        for (plan, _, _), result in zip(composed, results, strict=True):
            if isinstance(result, IdempotencyConflictError):
                outcomes.append(_failed(plan.recipient, SkipReason.KEY_CONFLICT, result, failures))
            elif isinstance(result, MessageError):
                outcomes.append(
                    _failed(plan.recipient, SkipReason.INVALID_MESSAGE, result, failures)
                )
            else:
                outcomes.append(
                    RecipientOutcome(
                        plan.recipient.describe(), NotificationOutcome.QUEUED, None, result
                    )
                )

    def _recipients(self, to: Iterable[object] | object) -> tuple[list[Recipient], bool]:
        named: list[object]
        if to is None or isinstance(to, str | Address | Recipient):
            named = [] if to is None else [to]
        elif isinstance(to, Iterable):
            named = list(to)
        else:
            named = [to]  # one user object
        recipients = [_recipient_or_unparsed(value) for value in named]
        if recipients:
            return recipients, False
        fallback = [*self.settings.ADMINS, *self.settings.EMAIL_FALLBACK_TO]
        return [Recipient.of(address) for address in fallback], True

    def _plan(
        self,
        recipients: Sequence[Recipient],
        actor: Recipient | None,
        outcomes: list[RecipientOutcome],
        failures: list[MessageError],
        *,
        fallback: bool,
    ) -> list[_Planned]:
        if not recipients:
            logger.warning(
                "a notification named no recipients and neither ADMINS nor EMAIL_FALLBACK_TO "
                "is set; it was recorded as skipped"
            )
            outcomes.append(
                RecipientOutcome("", NotificationOutcome.SKIPPED, SkipReason.NO_RECIPIENTS)
            )
            return []
        actor_keys = set()
        if actor is not None:
            actor_keys = {k for k in (actor.key, _normalized_or_none(actor.email)) if k}
        planned: list[_Planned] = []
        seen: set[str] = set()
        for recipient in recipients:
            if not recipient.email:
                outcomes.append(_skip(recipient, SkipReason.NO_ADDRESS))
                continue
            try:
                # Bidi overrides are dropped from names taken from app data, which Address
                # would refuse: the name reads plainer, and the person still gets their mail.
                address = Address.parse(recipient.email, "to").with_display_name(
                    without_bidi_overrides(recipient.name)
                )
            except MessageError as exc:
                outcomes.append(_failed(recipient, SkipReason.INVALID_ADDRESS, exc, failures))
                continue
            normalized = address.addr_spec.lower()
            if normalized in seen:
                outcomes.append(_skip(recipient, SkipReason.DUPLICATE))
                continue
            seen.add(normalized)
            if not fallback and (recipient.key in actor_keys or normalized in actor_keys):
                outcomes.append(_skip(recipient, SkipReason.IS_ACTOR))
                continue
            planned.append(_Planned(recipient, address, normalized, recipient.key or normalized))
        return planned

    def _compose(
        self,
        plan: _Planned,
        *,
        ntype: NotificationType,
        template: str | Template,
        tokens: UnsubscribeTokens | None,
        context: Mapping[str, Any],
        actor_name: str,
        link: str | None,
        metadata: Mapping[str, Any] | None,
        fallback: bool,
    ) -> tuple[Message, str | None]:
        """The message for one recipient, and the unsubscribe token in it (if any)."""
        settings = self.settings
        app_address = Address.parse(settings.DEFAULT_FROM_EMAIL, "DEFAULT_FROM_EMAIL")
        app = headers.app_name(app_address)
        extra_headers = {
            **headers.auto_submitted(),
            **headers.notification_type(settings.NOTIFICATION_TYPE_HEADER, ntype.name),
        }
        unsubscribe_link = token = None
        if tokens is not None:
            token = tokens.make(plan.address, type_scope(ntype.name), key=plan.recipient.key)
            unsubscribe_link = unsubscribe_url(settings, token)
            assert unsubscribe_link is not None  # PUBLIC_BASE_URL is set  # noqa: S101
            extra_headers.update(
                headers.list_unsubscribe(unsubscribe_link, settings.UNSUBSCRIBE_EMAIL_ADDRESS)
            )
        absolute_link = deep_link(settings.FRONTEND_BASE_URL, link)
        rendered = self.templates.render(
            template,
            {
                **context,
                "recipient": {"name": plan.address.display_name, "email": plan.address.addr_spec},
                "actor": {"name": actor_name} if actor_name else None,
                "link": absolute_link,
                "unsubscribe_url": unsubscribe_link,
                "app_name": app,
                "notification_type": ntype.name,
            },
        )
        text, html = add_footer(
            rendered.text, rendered.html, _footer(ntype, app, unsubscribe_link, fallback)
        )
        sender = headers.noreply_sender(
            Address.parse(settings.noreply_address, "NOREPLY_EMAIL_ADDRESS"),
            headers.sender_display_name(app, actor_name),
            tokenized=settings.ADD_TOKENS_TO_NOREPLY_ADDRESS,
        )
        message = Message(
            to=[plan.address],
            subject=headers.prefixed_subject(settings.EMAIL_SUBJECT_PREFIX, rendered.subject),
            text=text,
            html=html,
            from_email=sender,
            headers=extra_headers,
            metadata={**(metadata or {}), "notification_type": ntype.name},
        )
        return message, token

    def _log(
        self, type_name: str, outcomes: Sequence[RecipientOutcome], actor: str, now: float
    ) -> None:
        rows = [
            {
                "at": now,
                "notification_type": type_name,
                "recipient": o.recipient,
                "outcome": o.outcome.value,
                "reason": o.reason,
                "message_pk": o.message_pk,
                "actor": actor or None,
            }
            for o in outcomes
        ]
        with self.outbox.engine.begin() as connection:
            q.insert_notification_log(connection, rows)
        for o in outcomes:
            if o.outcome is not NotificationOutcome.QUEUED:
                logger.info("notification %s not sent to %s: %s", type_name, o.recipient, o.reason)


def _footer(
    ntype: NotificationType, app: str, unsubscribe_link: str | None, fallback: bool
) -> Footer:
    if fallback:
        return Footer(f"You receive this {app} notification as an administrator.")
    if not ntype.may_opt_out:
        return Footer(f"This message about your {app} account is sent whenever it is needed.")
    return Footer(
        f"You receive this because of your {app} email settings ({ntype.label}).",
        "Unsubscribe or change your email settings",
        unsubscribe_link,
    )


def _actor(actor: object) -> tuple[Recipient | None, str]:
    """The actor as a recipient (to leave them out) and the name the sender line shows.

    A string is a name ("Ada Lovelace") or an address ("Ada Lovelace <ada@x>")."""
    if actor is None:
        return None, ""
    if isinstance(actor, str) and "@" not in actor:
        return None, " ".join(without_bidi_overrides(actor).split())
    person = Recipient.of(actor)
    return person, without_bidi_overrides(person.name)


def _skip(recipient: Recipient, reason: str) -> RecipientOutcome:
    return RecipientOutcome(recipient.describe(), NotificationOutcome.SKIPPED, reason)


def _failed(
    recipient: Recipient, reason: str, error: MessageError, failures: list[MessageError]
) -> RecipientOutcome:
    """A recipient skipped because of an error: logged with the error, which is kept."""
    failures.append(error)
    logger.warning("notification not sent to %s: %s", recipient.describe(), error)
    return _skip(recipient, reason)


def _recipient_or_unparsed(value: object) -> Recipient:
    """``Recipient.of(value)``; an address string it cannot parse is kept as it is, to be
    skipped (and logged) on its own rather than failing the whole call."""
    try:
        return Recipient.of(value)
    except MessageError:
        if isinstance(value, str):
            return Recipient(value)
        raise


def _fingerprint(message: Message, token: str | None, stream: str) -> str:
    """What a notification's idempotency key is compared on: its content, less what
    differs on every call for the same request: the noreply local part (a random token, so
    only the sender's name counts) and the unsubscribe token (signed with the time)."""

    def stable(value: str | None) -> str | None:
        return value.replace(token, "") if token and value else value

    sender = message.from_email
    name = sender.display_name if isinstance(sender, Address) else str(sender)
    return content_fingerprint(
        replace(
            message,
            from_email=None,
            subject=stable(message.subject) or "",
            text=stable(message.text),
            html=stable(message.html),
            headers={
                "From-Name": name,
                **{key: stable(value) or "" for key, value in message.headers.items()},
            },
            metadata={},
        ),
        stream=stream,
    )


def _normalized_or_none(address: str | None) -> str | None:
    if not address:
        return None
    try:
        return normalize_address(address)
    except MessageError:
        return None


def _recipient_key(key: str, address: str) -> str:
    combined = f"{key}:{address}"
    if len(combined) <= _IDEMPOTENCY_KEY_MAX:
        return combined
    return f"{key[:100]}:{hashlib.sha256(combined.encode()).hexdigest()}"


# -- the module-level API -------------------------------------------------------------------

_notifier_lock = threading.Lock()
_notifier: Notifier | None = None


def _default_notifier() -> Notifier:
    global _notifier  # noqa: PLW0603 - one per process, rebuilt when the outbox changes
    from mailroom.sending import default_outbox  # noqa: PLC0415 - sending imports this module

    outbox = default_outbox()
    with _notifier_lock:
        if _notifier is None or _notifier.outbox is not outbox:
            _notifier = Notifier(outbox)
        return _notifier


def notify(
    notification_type: str,
    to: Iterable[object] | object = None,
    *,
    context: Mapping[str, Any] | None = None,
    actor: object = None,
    link: str | None = None,
    idempotency_key: str | None = None,
    send_at: datetime | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> NotifyResult:
    """Compose and enqueue a notification of a registered type, one message per recipient.

    ``to``: recipients — address strings, :class:`Recipient` objects, or user objects with an
    ``email`` attribute; none → ``ADMINS`` + ``EMAIL_FALLBACK_TO``. ``actor``: the person whose
    action caused it (a name or a user object): the sender reads "<actor> via <app>", and the
    actor is not notified. ``context``: template variables. ``link``: a path in the app, made
    absolute with ``FRONTEND_BASE_URL`` (``link`` is ``None`` in templates when that is unset).
    ``idempotency_key``: the same key never notifies the same address twice.
    """
    return _default_notifier().notify(
        notification_type,
        to,
        context=context,
        actor=actor,
        link=link,
        idempotency_key=idempotency_key,
        send_at=send_at,
        metadata=metadata,
    )
