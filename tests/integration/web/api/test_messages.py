"""``/api/v1/messages`` over HTTP against a real ``mailroom serve``: send, idempotency, batch,
read back, cancel, retry, and what a ``send`` key may see."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from support.api_service import ApiService

LATER = (datetime.now(UTC) + timedelta(days=1)).isoformat()


def _wait_for(client: httpx.Client, message_pk: int, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        body: dict[str, Any] = client.get(f"/api/v1/messages/{message_pk}").json()
        if body["status"] == status or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_a_message_sent_through_the_api_is_captured_with_its_attempt_and_a_sent_event(
    service: ApiService,
) -> None:
    with service.client(service.send_key) as client, service.client(service.admin_key) as admin:
        answer = client.post(
            "/api/v1/messages",
            json={
                "to": ["Ada <ada@example.com>"],
                "subject": "Hello",
                "text": "Hi Ada",
                "html": "<p>Hi Ada</p>",
                "attachments": [
                    {"filename": "a.txt", "content": base64.b64encode(b"file").decode()}
                ],
                "metadata": {"order": 7},
            },
        )
        assert answer.status_code == 201, answer.text
        message_pk = answer.json()["id"]
        body = _wait_for(client, message_pk, "sent")
        assert body["status"] == "sent", body
        assert body["recipients"] == ["ada@example.com"]
        assert body["metadata"] == {"order": 7}
        assert [a["outcome"] for a in body["attempt_log"]] == ["sent"]
        assert [a["transport"] for a in body["attempt_log"]] == ["capture"]
        assert "sent" in [e["type"] for e in body["events"]]

        page = admin.get("/api/v1/captured").json()
        captured = next(c for c in page["items"] if c["message_pk"] == message_pk)
        detail = admin.get(f"/api/v1/captured/{captured['id']}").json()
        assert detail["text"].strip() == "Hi Ada"
        assert "<p>Hi Ada</p>" in detail["html"]
        assert [(f["filename"], f["size"]) for f in detail["attachments"]] == [("a.txt", 4)]
        assert ["Subject", "Hello"] in detail["headers"]
        raw = admin.get(f"/api/v1/captured/{captured['id']}/raw")
        assert raw.headers["content-type"] == "message/rfc822"
        assert b"Subject: Hello" in raw.content


def test_the_same_idempotency_key_gives_the_same_id_and_never_a_second_message(
    service: ApiService,
) -> None:
    message = {"to": ["bob@example.com"], "subject": "Once", "text": "only once"}
    with service.client(service.send_key) as client:
        first = client.post("/api/v1/messages", json=message, headers={"Idempotency-Key": "k-1"})
        again = client.post("/api/v1/messages", json=message, headers={"Idempotency-Key": "k-1"})
        other = client.post(
            "/api/v1/messages",
            json={**message, "text": "something else"},
            headers={"Idempotency-Key": "k-1"},
        )
    assert first.status_code == 201, first.text
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"
    assert other.json()["error"]["field"] == "Idempotency-Key"
    with service.client(service.admin_key) as admin:
        captured = admin.get("/api/v1/captured", params={"search": "bob@example.com"}).json()
    assert len([c for c in captured["items"] if c["subject"] == "Once"]) <= 1


def test_bad_input_is_a_422_naming_the_field(service: ApiService) -> None:
    with service.client(service.send_key) as client:
        address = client.post("/api/v1/messages", json={"to": ["not an address"]})
        header = client.post(
            "/api/v1/messages", json={"to": ["a@example.com"], "headers": {"X-Tag": "a\nBcc: x"}}
        )
        shape = client.post("/api/v1/messages", json={"to": ["a@example.com"], "cc": "x"})
        attachment = client.post(
            "/api/v1/messages",
            json={"to": ["a@example.com"], "attachments": [{"filename": "a", "content": "%%"}]},
        )
    for answer, field in (
        (address, "to"),
        (header, "headers.X-Tag"),
        (shape, "cc"),
        (attachment, "attachments[0].content"),
    ):
        assert answer.status_code == 422, answer.text
        assert set(answer.json()) == {"error"}
        assert answer.json()["error"]["field"] == field, answer.text


def test_a_batch_with_bad_items_commits_nothing_and_names_every_bad_item(
    service: ApiService,
) -> None:
    with service.client(service.send_key) as client:
        before = client.post("/api/v1/messages", json={"to": ["a@example.com"]}).json()["id"]
        answer = client.post(
            "/api/v1/messages/batch",
            json={
                "messages": [
                    {"to": ["a@example.com"], "subject": "fine"},
                    {"to": ["nobody"]},
                    {"to": ["b@example.com"], "stream": "bulk"},
                    {"to": ["c@example.com"], "headers": {"X-A": "a\r\nb"}},
                ]
            },
        )
        after = client.post("/api/v1/messages", json={"to": ["a@example.com"]}).json()["id"]
        good = client.post(
            "/api/v1/messages/batch",
            json={
                "messages": [
                    {"to": ["a@example.com"], "idempotency_key": "b-1"},
                    {"to": ["b@example.com"], "stream": "bulk", "send_at": LATER},
                ]
            },
        )
        shapes = client.post(
            "/api/v1/messages/batch",
            json={"messages": [{"subject": "no to"}, {"to": ["a@example.com"]}, {"to": 7}]},
        )
        too_many = client.post(
            "/api/v1/messages/batch", json={"messages": [{"to": ["a@example.com"]}] * 6}
        )
    assert answer.status_code == 422, answer.text
    items = answer.json()["items"]
    assert [(i["index"], i["error"]["field"]) for i in items] == [(1, "to"), (3, "headers.X-A")]
    assert answer.json()["error"]["code"] == "invalid_batch"
    assert after == before + 1  # nothing of the refused batch was committed
    assert good.status_code == 201, good.text
    assert good.json()["ids"] == [after + 1, after + 2]
    assert shapes.status_code == 422, shapes.text
    assert [(i["index"], i["error"]["field"]) for i in shapes.json()["items"]] == [
        (0, "to"),
        (2, "to"),
    ]
    assert shapes.json()["error"]["field"] == "messages[0].to"
    assert too_many.status_code == 413
    assert too_many.json()["error"]["code"] == "batch_too_large"


def test_cancel_and_retry_and_the_409_where_they_do_not_apply(service: ApiService) -> None:
    with service.client(service.send_key) as client:
        message_pk = client.post(
            "/api/v1/messages", json={"to": ["a@example.com"], "send_at": LATER}
        ).json()["id"]
        assert client.get(f"/api/v1/messages/{message_pk}").json()["status"] == "scheduled"
        retry_first = client.post(f"/api/v1/messages/{message_pk}/retry")
        cancelled = client.post(f"/api/v1/messages/{message_pk}/cancel")
        cancel_again = client.post(f"/api/v1/messages/{message_pk}/cancel")
        retried = client.post(f"/api/v1/messages/{message_pk}/retry")
        missing = client.post("/api/v1/messages/999999/cancel")
    assert retry_first.status_code == 409
    assert retry_first.json()["error"]["code"] == "not_retryable"
    assert cancelled.json() == {"id": message_pk, "status": "cancelled"}
    assert cancel_again.status_code == 409
    assert cancel_again.json()["error"]["code"] == "not_cancellable"
    # Never tried and due tomorrow: a retry puts it back as it was, scheduled.
    assert retried.json() == {"id": message_pk, "status": "scheduled"}
    assert missing.status_code == 404


def test_a_send_key_reads_only_its_own_messages_and_no_admin_resource(
    service: ApiService,
) -> None:
    with (
        service.client(service.send_key) as mine,
        service.client(service.other_send_key) as theirs,
        service.client(service.admin_key) as admin,
    ):
        message_pk = mine.post(
            "/api/v1/messages", json={"to": ["a@example.com"], "send_at": LATER}
        ).json()["id"]
        assert mine.get(f"/api/v1/messages/{message_pk}").status_code == 200
        assert admin.get(f"/api/v1/messages/{message_pk}").status_code == 200
        # Another key's message answers as one that does not exist: 404, same as a missing id.
        for answer in (
            theirs.get(f"/api/v1/messages/{message_pk}"),
            theirs.post(f"/api/v1/messages/{message_pk}/cancel"),
            theirs.post(f"/api/v1/messages/{message_pk}/retry"),
        ):
            assert answer.status_code == 404
            assert answer.json()["error"]["code"] == "not_found"
        # Its idempotency keys are its own: the same key from another key is another message.
        one = mine.post(
            "/api/v1/messages", json={"to": ["a@x.example"]}, headers={"Idempotency-Key": "s"}
        )
        two = theirs.post(
            "/api/v1/messages", json={"to": ["a@x.example"]}, headers={"Idempotency-Key": "s"}
        )
        assert one.json()["id"] != two.json()["id"]
        # Admin resources: 403, whatever the method.
        for method, path, body in (
            ("GET", "/api/v1/suppressions", None),
            ("POST", "/api/v1/suppressions", {"address": "a@example.com"}),
            ("DELETE", "/api/v1/suppressions/a@example.com", None),
            ("GET", "/api/v1/captured", None),
            ("GET", "/api/v1/preferences/user:1", None),
            ("GET", "/api/v1/status", None),
        ):
            answer = mine.request(method, path, json=body)
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "forbidden"
        assert admin.get("/api/v1/suppressions").status_code == 200


def test_every_key_that_does_not_authenticate_gets_the_same_401(service: ApiService) -> None:
    prefix, _, secret = service.send_key.rpartition("_")
    altered = prefix + "_" + ("A" if secret[0] != "A" else "B") + secret[1:]
    presented = [
        None,  # no header
        "Bearer",
        "Token abc",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-key",
        f"Bearer {altered}",  # a known prefix, a wrong secret
        f"Bearer {service.revoked_key}",
        f"Bearer {service.send_key}x",
    ]
    answers = []
    with service.client() as client:
        for header in presented:
            headers = {} if header is None else {"Authorization": header}
            answers.append(client.get("/api/v1/messages/1", headers=headers))
    assert {a.status_code for a in answers} == {401}
    assert len({a.content for a in answers}) == 1
    assert {a.headers["www-authenticate"] for a in answers} == {"Bearer"}
    assert answers[0].json()["error"]["code"] == "unauthorized"
    with service.client() as client:  # the scheme's name is case-insensitive (RFC 9110 §11.1)
        lower = client.get(
            "/api/v1/status", headers={"Authorization": f"bearer {service.admin_key}"}
        )
    assert lower.status_code == 200


def test_a_body_over_the_limit_is_a_413_declared_or_streamed(service: ApiService) -> None:
    big = {"to": ["a@example.com"], "text": "x" * 150_000}
    with service.client(service.send_key) as client:
        declared = client.post("/api/v1/messages", json=big)

        def chunks() -> Iterator[bytes]:
            yield b'{"to": ["a@example.com"], "text": "'
            for _ in range(30):
                yield b"x" * 10_000
            yield b'"}'

        streamed = client.post(
            "/api/v1/messages", content=chunks(), headers={"Content-Type": "application/json"}
        )
        fits = client.post("/api/v1/messages", json={**big, "text": "x" * 50_000})
    for answer in (declared, streamed):
        assert answer.status_code == 413, answer.text
        assert answer.json()["error"]["code"] == "body_too_large"
    assert fits.status_code == 201


def test_a_body_that_is_not_a_json_message_is_a_422_in_the_one_shape(service: ApiService) -> None:
    json_type = {"Content-Type": "application/json"}
    with service.client(service.send_key) as client:
        answers = {
            "broken": client.post("/api/v1/messages", content=b'{"to": [', headers=json_type),
            "empty": client.post("/api/v1/messages", content=b"", headers=json_type),
            "not json": client.post(
                "/api/v1/messages",
                content=b'{"to": ["a@example.com"]}',
                headers={"Content-Type": "text/plain"},
            ),
            "batch broken": client.post("/api/v1/messages/batch", content=b"[", headers=json_type),
        }
        # A JSON subtype with parameters is JSON (as FastAPI reads it).
        typed = client.post(
            "/api/v1/messages",
            content=b'{"to": ["a@example.com"]}',
            headers={"Content-Type": "application/merge-patch+json; charset=utf-8"},
        )
    for name, answer in answers.items():
        assert answer.status_code == 422, (name, answer.text)
        assert set(answer.json()) == {"error"}, name
        assert answer.json()["error"]["code"] == "invalid", name
    assert typed.status_code == 201, typed.text


def test_concurrent_sends_each_get_their_own_id_and_a_bad_one_fails_alone(
    service: ApiService,
) -> None:
    def send(n: int) -> httpx.Response:
        to = "nobody" if n == 5 else f"group{n}@example.com"
        with service.client(service.send_key) as client:
            return client.post("/api/v1/messages", json={"to": [to], "subject": f"G{n}"})

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(send, range(24)))
    assert answers[5].status_code == 422
    assert answers[5].json()["error"]["field"] == "to"
    good = [a for n, a in enumerate(answers) if n != 5]
    assert {a.status_code for a in good} == {201}
    ids = [a.json()["id"] for a in good]
    assert len(set(ids)) == len(ids)
    with service.client(service.send_key) as client:
        subjects = [client.get(f"/api/v1/messages/{i}").json()["subject"] for i in ids]
    assert subjects == [f"G{n}" for n in range(24) if n != 5]
