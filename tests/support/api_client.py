"""An HTTP client for the API tests that checks every answer for secrets.

Every response any API test reads goes through :meth:`SecretWatch.check` (an httpx response
hook): its status line, headers and body must not contain the SMTP password, the
``SECRET_KEY`` or any API key (keys are registered once made; they are shown only in the
answer that creates them, and these tests make them directly in the database).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

__all__ = ["SecretWatch", "api_client"]


class SecretWatch:
    """The secrets no answer may contain, and how many answers were checked."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = [s for s in secrets if s]
        self.checked = 0

    def add(self, secret: str) -> None:
        self.secrets.append(secret)

    def check(self, response: httpx.Response) -> None:
        response.read()
        seen = (
            "\n".join(
                [
                    str(response.status_code),
                    *(f"{name}: {value}" for name, value in response.headers.items()),
                ]
            ).encode()
            + b"\n"
            + response.content
        )
        for secret in self.secrets:
            assert secret.encode() not in seen, (
                f"{response.request.method} {response.request.url.path} answered with a secret"
            )
        self.checked += 1

    def check_text(self, text: str, where: str) -> None:
        """``text`` (a process's output) holds no secret."""
        for secret in self.secrets:
            assert secret not in text, f"{where} contains a secret"


def api_client(
    base_url: str,
    watch: SecretWatch,
    key: str | None = None,
    transport: httpx.BaseTransport | None = None,
    **options: Any,
) -> httpx.Client:
    """A client for ``base_url`` whose every answer ``watch`` checks; with ``key``, it sends
    ``Authorization: Bearer key`` (``transport``: for the watch's own tests; ``options``:
    more httpx.Client arguments, e.g. ``follow_redirects``, ``timeout``, ``headers``)."""
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    headers.update(options.pop("headers", {}))
    options.setdefault("timeout", 30.0)
    return httpx.Client(
        base_url=base_url,
        headers=headers,
        transport=transport,
        event_hooks={"response": [watch.check]},
        **options,
    )
