"""The secret watch of the API tests catches a secret in a body, a header or the output."""

from __future__ import annotations

import httpx
import pytest

from support.api_client import SecretWatch, api_client

SECRET = "mrk_abcdefghijkl_" + "s" * 43


def _answering(body: bytes, headers: dict[str, str] | None = None) -> httpx.MockTransport:
    return httpx.MockTransport(lambda _request: httpx.Response(200, content=body, headers=headers))


@pytest.mark.parametrize(
    ("body", "headers"),
    [(f'{{"key": "{SECRET}"}}'.encode(), None), (b"{}", {"X-Echo": SECRET})],
)
def test_a_secret_in_an_answer_fails_the_request(
    body: bytes, headers: dict[str, str] | None
) -> None:
    watch = SecretWatch([SECRET])
    with (
        api_client("http://api.test", watch, transport=_answering(body, headers)) as client,
        pytest.raises(AssertionError, match="answered with a secret"),
    ):
        client.get("/api/v1/status")
    assert watch.checked == 0


def test_an_answer_without_secrets_is_counted_and_output_is_checked_too() -> None:
    watch = SecretWatch(["", "smtp-password"])
    with api_client("http://api.test", watch, transport=_answering(b'{"id": 1}')) as client:
        assert client.get("/api/v1/messages/1").json() == {"id": 1}
    assert watch.checked == 1
    with pytest.raises(AssertionError, match="output"):
        watch.check_text("connected with smtp-password", "the output")
