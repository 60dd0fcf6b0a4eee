"""Views of the test project: an ``async def`` view that sends mail the way a sync view does,
with Django's mail API called straight from the coroutine (no ``sync_to_async``)."""

from __future__ import annotations

from django.core.mail import EmailMessage, mail_admins, send_mail
from django.http import HttpRequest, JsonResponse


async def place_order(request: HttpRequest) -> JsonResponse:
    to = request.GET["to"]
    sent = send_mail("Order placed", "Thank you for your order.", None, [to])
    receipt = EmailMessage("Your receipt", "Order 7: paid.", to=[to])
    receipt.send()
    mail_admins("an order was placed", f"for {to}")
    return JsonResponse({"sent": sent, "receipt": receipt.mailroom_status})  # type: ignore[attr-defined]
