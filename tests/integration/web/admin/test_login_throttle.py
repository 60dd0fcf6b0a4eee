"""Sign-in attempts in parallel against a real ``mailroom serve`` on SQLite: the throttle
counts an attempt before its password check, so a burst gets 429s past the limit; the
password checks hold no transaction, so the API sends on while a burst is hashed; and one
address's wrong guesses do not lock the admin out from another."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from mailroom.access.apikeys import create_api_key
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.vocabulary import ApiKeyScope
from support.service import ServiceProcess

from .test_sessions import browser, csrf_of, sign_in

PASSWORD = "admin-password-for-the-throttle"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    home = tmp_path_factory.mktemp("throttle")
    env = {
        "DATABASE_URL": f"sqlite:///{home / 'outbox.db'}",
        "SECRET_KEY": "login-throttle-test-secret-0123456789-abcdef",
        "MAILROOM_ADMIN_PASSWORD": PASSWORD,
        "MAILROOM_TRANSPORT": "null",
        "DEFAULT_FROM_EMAIL": "noreply@acme.example",
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
    }
    with ServiceProcess(env, ["--no-worker"], cwd=home) as service:
        service.watch.add(PASSWORD)
        yield service
        assert "Traceback" not in service.output, service.output


@pytest.fixture(scope="module")
def send_key(service: ServiceProcess) -> str:
    engine = create_outbox_engine(service.settings_env["DATABASE_URL"])
    try:
        with engine.begin() as connection:
            _, key = create_api_key(connection, name="app", scope=ApiKeyScope.SEND, now=time.time())
    finally:
        engine.dispose()
    service.watch.add(key)
    return key


def _burst(
    service: ServiceProcess, attempts: list[tuple[str, str]], password: str
) -> list[httpx.Response]:
    """Each (address, name) of ``attempts`` signing in at once, with ``password``."""
    clients = [browser(service, address) for address, _ in attempts]
    tokens = [csrf_of(client.get("/admin/login")) for client in clients]
    start = threading.Barrier(len(attempts))

    def post(index: int) -> httpx.Response:
        start.wait()
        return clients[index].post(
            "/admin/login",
            data={
                "username": attempts[index][1],
                "password": password,
                "csrf_token": tokens[index],
            },
        )

    try:
        with ThreadPoolExecutor(len(attempts)) as pool:
            return list(pool.map(post, range(len(attempts))))
    finally:
        for client in clients:
            client.close()


def test_parallel_wrong_attempts_get_429_past_the_limit(service: ServiceProcess) -> None:
    answers = _burst(service, [("198.51.100.10", "admin")] * 12, "a wrong guess")
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [401] * 5 + [429] * 7


def test_an_api_send_is_not_held_up_by_a_burst_of_sign_ins(
    service: ServiceProcess, send_key: str
) -> None:
    attempts = [(f"198.51.100.{100 + n}", f"guess{n}") for n in range(20)]
    latencies: list[float] = []
    done = threading.Event()

    def send_meanwhile() -> None:
        with service.client(send_key, timeout=30.0) as client:
            while not done.is_set():
                started = time.monotonic()
                answer = client.post(
                    "/api/v1/messages",
                    json={"to": ["ada@example.com"], "subject": "hi", "text": "hi"},
                )
                latencies.append(time.monotonic() - started)
                assert answer.status_code == 201, answer.text

    with ThreadPoolExecutor(1) as pool:
        sender = pool.submit(send_meanwhile)
        answers = _burst(service, attempts, "a wrong guess")
        done.set()
        sender.result()
    assert [answer.status_code for answer in answers] == [401] * 20
    assert len(latencies) >= 3
    assert max(latencies) < 1.0, latencies


def test_the_admin_signs_in_from_elsewhere_after_five_failures_from_one_address(
    service: ServiceProcess,
) -> None:
    with browser(service, "203.0.113.5") as attacker:
        for _ in range(5):
            assert sign_in(attacker, "admin", "a wrong guess").status_code == 401
        assert sign_in(attacker, "admin", PASSWORD).status_code == 429
    with browser(service, "203.0.113.99") as owner:
        assert sign_in(owner, "admin", PASSWORD).status_code == 303
