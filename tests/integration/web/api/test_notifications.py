"""``POST /api/v1/notifications`` with types from the settings file, and the suppression and
preference resources that decide who is skipped, over HTTP against a real ``mailroom serve``."""

from __future__ import annotations

import json
import subprocess
import sys

from support.api_service import ApiService
from support.worker_process import worker_env


def test_a_notification_of_a_type_from_the_settings_file_names_ids_and_skips(
    service: ApiService,
) -> None:
    with service.client(service.admin_key) as admin, service.client(service.send_key) as app:
        suppressed = admin.post(
            "/api/v1/suppressions", json={"address": "Gone@Example.com", "reason": "hard_bounce"}
        )
        assert suppressed.status_code == 201, suppressed.text
        assert suppressed.json()["address"] == "gone@example.com"
        opted_out = admin.put(
            "/api/v1/preferences/user:7", json={"types": {"task.assigned": False}}
        )
        assert opted_out.status_code == 200, opted_out.text
        answer = app.post(
            "/api/v1/notifications",
            json={
                "type": "task.assigned",
                "to": [
                    "Ada <ada@example.com>",
                    "gone@example.com",
                    {"email": "bob@example.com", "name": "Bob", "key": "user:7"},
                    "Carol <carol@example.com>",
                ],
                "actor": "Carol <carol@example.com>",
                "context": {"task": "Invoice 12"},
                "link": "/tasks/12",
            },
        )
        assert answer.status_code == 201, answer.text
        result = answer.json()
        assert result["type"] == "task.assigned"
        assert [q["recipient"] for q in result["queued"]] == ["ada@example.com"]
        assert result["outbox_ids"] == [result["queued"][0]["id"]]
        skipped = {s["recipient"]: (s["outcome"], s["reason"]) for s in result["skipped"]}
        assert skipped == {
            "gone@example.com": ("suppressed", "hard_bounce"),
            "bob@example.com": ("skipped", "opted_out"),
            "carol@example.com": ("skipped", "is_actor"),
        }
        # The key that sent it reads its message back; the template came from the folder.
        message = app.get(f"/api/v1/messages/{result['outbox_ids'][0]}").json()
        assert message["subject"] == "Invoice 12 for you"
        assert message["metadata"] == {"notification_type": "task.assigned"}

        unknown = app.post("/api/v1/notifications", json={"type": "nope", "to": ["a@b.example"]})
        assert unknown.status_code == 422
        assert unknown.json()["error"] == {
            "code": "unknown_notification_type",
            "message": unknown.json()["error"]["message"],
            "field": "type",
        }
        assert "task.assigned" in unknown.json()["error"]["message"]


def test_suppressions_list_in_keyset_pages_and_remove(service: ApiService) -> None:
    with service.client(service.admin_key) as admin:
        for n in range(5):
            admin.post("/api/v1/suppressions", json={"address": f"page{n}@list.example"})
        seen: list[str] = []
        after = None
        while True:
            params: dict[str, str | int] = {"limit": 2, "search": "@list.example"}
            if after is not None:
                params["after"] = after
            page = admin.get("/api/v1/suppressions", params=params).json()
            seen += [item["address"] for item in page["items"]]
            after = page["next"]
            if after is None:
                break
        assert seen == [f"page{n}@list.example" for n in range(5)]
        removed = admin.delete("/api/v1/suppressions/PAGE0@list.example")
        assert removed.json() == {"address": "page0@list.example", "scope": "all", "removed": True}
        again = admin.delete("/api/v1/suppressions/page0@list.example")
        assert again.status_code == 404
        bad_scope = admin.post(
            "/api/v1/suppressions", json={"address": "a@list.example", "scope": "everything"}
        )
        assert bad_scope.status_code == 422
        assert bad_scope.json()["error"]["field"] == "scope"


def test_preferences_read_and_update_and_a_required_type_cannot_be_turned_off(
    service: ApiService,
) -> None:
    with service.client(service.admin_key) as admin:
        before = admin.get("/api/v1/preferences/Dora@Example.com").json()
        assert before["recipient"] == "dora@example.com"
        choices = {t["type"]: t["email"] for t in before["types"]}
        assert choices == {"account.password_reset": True, "task.assigned": True}
        off = admin.put(
            "/api/v1/preferences/dora@example.com", json={"types": {"task.assigned": False}}
        ).json()
        assert {t["type"]: t["choice"] for t in off["types"]}["task.assigned"] == "opted_out"
        refused = admin.put(
            "/api/v1/preferences/dora@example.com",
            json={"types": {"task.assigned": True, "account.password_reset": False}},
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "not_optional"
        assert refused.json()["error"]["field"] == "types.account.password_reset"
        after = admin.get("/api/v1/preferences/dora@example.com").json()
        # All or none: the refused request changed nothing.
        assert {t["type"]: t["email"] for t in after["types"]}["task.assigned"] is False


def test_status_is_the_data_of_mailroom_status_json(service: ApiService) -> None:
    with service.client(service.admin_key) as admin:
        admin.post("/api/v1/messages", json={"to": ["s@example.com"]})
        status = admin.get("/api/v1/status").json()
    assert set(status) == {
        "counts",
        "sent_last_minute",
        "sent_last_hour",
        "rate_per_second_last_minute",
        "rate_per_minute_last_hour",
        "recent_failures",
        "paused_streams",
    }
    assert sum(status["counts"].values()) >= 1
    shown = subprocess.run(
        [sys.executable, "-m", "mailroom", "status", "--json"],
        env=worker_env(service.env),
        capture_output=True,
        check=True,
    )
    command = json.loads(shown.stdout)
    # The command adds what it found wrong in the settings it read; the queue is the same.
    assert set(command) - {"settings_errors"} == set(status)
    assert sum(command["counts"].values()) == sum(status["counts"].values())


def test_a_notification_with_the_same_idempotency_key_notifies_nobody_twice(
    service: ApiService,
) -> None:
    request = {"type": "task.assigned", "to": ["eve@example.com"], "context": {"task": "T-1"}}
    key = {"Idempotency-Key": "task-1-assigned"}
    with service.client(service.send_key) as app:
        first = app.post("/api/v1/notifications", json=request, headers=key)
        again = app.post("/api/v1/notifications", json=request, headers=key)
        other = app.post(
            "/api/v1/notifications", json={**request, "context": {"task": "T-2"}}, headers=key
        )
    assert first.status_code == 201, first.text
    assert again.json()["outbox_ids"] == first.json()["outbox_ids"]
    assert len(first.json()["outbox_ids"]) == 1
    # Other content under the same key: that recipient is skipped with the reason, and the
    # call, which left nobody sent to because of it, answers with the conflict.
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "idempotency_conflict"
