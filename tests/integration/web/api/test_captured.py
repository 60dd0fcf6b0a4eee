"""``/api/v1/captured`` over HTTP against a real ``mailroom serve`` (its capture transport):
newest first in keyset pages, one message parsed or raw, delete one and all."""

from __future__ import annotations

import time

import httpx

from support.api_service import ApiService


def _captured_ids(admin: httpx.Client, wanted: int) -> list[int]:
    deadline = time.monotonic() + 20
    while True:
        items = admin.get("/api/v1/captured", params={"limit": 200}).json()["items"]
        if len(items) >= wanted or time.monotonic() > deadline:
            return [item["id"] for item in items]
        time.sleep(0.05)


def test_captured_mail_pages_newest_first_and_deletes(service: ApiService) -> None:
    with service.client(service.send_key) as app, service.client(service.admin_key) as admin:
        for n in range(5):
            answer = app.post(
                "/api/v1/messages", json={"to": [f"p{n}@example.com"], "subject": f"Page {n}"}
            )
            assert answer.status_code == 201, answer.text
        ids = _captured_ids(admin, 5)
        assert len(ids) == 5
        assert ids == sorted(ids, reverse=True)

        seen: list[int] = []
        params: dict[str, int] = {"limit": 2}
        while True:
            page = admin.get("/api/v1/captured", params=params).json()
            seen += [item["id"] for item in page["items"]]
            if page["next"] is None:
                break
            params = {"limit": 2, "before": page["next"]}
        assert seen == ids
        newest = admin.get(f"/api/v1/captured/{ids[0]}").json()
        assert newest["subject"] == "Page 4"
        assert newest["recipients"] == ["p4@example.com"]

        assert admin.delete(f"/api/v1/captured/{ids[0]}").json() == {"deleted": 1}
        for gone in (
            admin.get(f"/api/v1/captured/{ids[0]}"),
            admin.get(f"/api/v1/captured/{ids[0]}/raw"),
            admin.delete(f"/api/v1/captured/{ids[0]}"),
        ):
            assert gone.status_code == 404
            assert gone.json()["error"]["code"] == "not_found"
        assert admin.delete("/api/v1/captured").json() == {"deleted": 4}
        assert admin.get("/api/v1/captured").json() == {"items": [], "next": None}


def test_paging_ids_past_bigint_are_refused_not_an_error(service: ApiService) -> None:
    with service.client(service.admin_key) as admin:
        captured = admin.get("/api/v1/captured", params={"before": str(2**63)})
        suppressions = admin.get("/api/v1/suppressions", params={"after": str(2**63)})
    assert captured.status_code == suppressions.status_code == 422
