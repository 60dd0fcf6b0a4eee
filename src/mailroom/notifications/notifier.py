"""The notifier: for one ``notify`` call, plan who gets the message, compose each recipient's,
commit them to the outbox together, and log every recipient's outcome.

Planning leaves out recipients without an address, named twice, or who are the actor, then
those who turned the type off or are suppressed; composition is
:func:`mailroom.compose.personalize.personalize`; one recipient's failure (their address,
their data in the template, an idempotency key used for another request) is recorded and
never costs the others their mail.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailroom.compose.footer import Footer
from mailroom.compose.links import deep_link
from mailroom.compose.personalize import personalize
from mailroom.compose.templates import Template, TemplateLibrary
from mailroom.compose.tracking import apply_tracking
from mailroom.consent.preferences import EmailChoice, email_choices
from mailroom.consent.scopes import SCOPE_ALL, type_scope
from mailroom.consent.suppression import suppressed_among
from mailroom.consent.tokens import UnsubscribeTokens
from mailroom.errors import IdempotencyConflictError, MessageError
from mailroom.message import Address, Message, without_bidi_overrides
from mailroom.notifications.idempotency import fingerprint, recipient_key
from mailroom.notifications.recipients import (
    Recipient,
    actor_of,
    named_recipients,
    normalized_or_none,
)
from mailroom.notifications.registry import (
    NotificationRegistry,
    NotificationType,
    default_registry,
)
from mailroom.notifications.results import NotifyResult, RecipientOutcome, SkipReason
from mailroom.outbox import notification_queries as q
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import ConsentFacts, NotificationOutcome

__all__ = ["Notifier"]

logger = logging.getLogger(__name__)


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
        """Compose and enqueue a notification of a registered type, one message per recipient.

        ``to``: recipients — address strings, :class:`Recipient` objects, or user objects with
        an ``email`` attribute; none → ``ADMINS`` + ``EMAIL_FALLBACK_TO``. ``actor``: the
        person whose action caused it (a name or a user object): the sender reads "<actor> via
        <app>", and the actor is not notified. ``context``: template variables. ``link``: a
        path in the app, made absolute with ``FRONTEND_BASE_URL`` (``link`` is ``None`` in
        templates when that is unset). ``idempotency_key``: the same key never notifies the
        same address twice.
        """
        ntype = self.registry.get(notification_type)
        context = dict(context or {})
        recipients, fallback = self._recipients(to)
        actor_person, actor_name = actor_of(actor)
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
        composed: list[tuple[_Planned, Message, str, list[str] | None]] = []
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
                # The request's fingerprint is of the message before tracking, whose tokens
                # name a Message-ID new on every call.
                request_print = fingerprint(message, token, ntype.stream)
                message, links = apply_tracking(message, self.settings, ntype.stream)
            except MessageError as exc:
                outcomes.append(_failed(plan.recipient, SkipReason.INVALID_MESSAGE, exc, failures))
                continue
            composed.append((plan, message, request_print, links))
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
        composed: Sequence[tuple[_Planned, Message, str, list[str] | None]],
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
            keys = [recipient_key(idempotency_key, plan.normalized) for plan, *_ in composed]
        results = self.outbox.send_each(
            [message for _, message, _, _ in composed],
            stream=ntype.stream,
            send_at=send_at,
            idempotency_keys=keys,
            fingerprints=[fingerprint for _, _, fingerprint, _ in composed],
            tracked_links=[links for *_, links in composed],
            # The worker checks the suppression list again at send time, for these scopes.
            consent=ConsentFacts((SCOPE_ALL, type_scope(ntype.name)), not ntype.may_opt_out),
        )
        for (plan, *_), result in zip(composed, results, strict=True):
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
        """The recipients named, or else the fallback admins (and ``True``: a fallback)."""
        recipients = named_recipients(to)
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
            actor_keys = {k for k in (actor.key, normalized_or_none(actor.email)) if k}
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
        token = None
        if tokens is not None:
            token = tokens.make(plan.address, type_scope(ntype.name), key=plan.recipient.key)
        message = personalize(
            self.templates,
            template,
            context,
            to=plan.address,
            settings=self.settings,
            type_name=ntype.name,
            footer=lambda app, unsubscribe_link: _footer(ntype, app, unsubscribe_link, fallback),
            unsubscribe_token=token,
            actor_name=actor_name,
            link=link,
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


def _skip(recipient: Recipient, reason: str) -> RecipientOutcome:
    return RecipientOutcome(recipient.describe(), NotificationOutcome.SKIPPED, reason)


def _failed(
    recipient: Recipient, reason: str, error: MessageError, failures: list[MessageError]
) -> RecipientOutcome:
    """A recipient skipped because of an error: logged with the error, which is kept."""
    failures.append(error)
    logger.warning("notification not sent to %s: %s", recipient.describe(), error)
    return _skip(recipient, reason)
