"""Behind a reverse proxy: X-Forwarded-For and X-Forwarded-Proto are believed only from the
addresses in FORWARDED_ALLOW_IPS (none by default), and ``--root-path`` puts the proxy's path
prefix into every URL the service makes. Shown by a real ``mailroom serve``: the client
address in its access log (``mailroom -v``; uvicorn trusts X-Forwarded-Proto by the same
rule), and the prefix in the API docs' URLs. The service builds no redirect of its own from
the request (no trailing-slash redirects: their Location came from the Host header)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.service import ServiceProcess, serve_args, service_env

FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


def get_health(service: ServiceProcess) -> None:
    answer = service.get("/healthz", headers=FORWARDED, follow_redirects=False)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("allowed", [None, "10.0.0.0/8, 192.0.2.1"])
def test_forwarded_headers_from_a_client_not_trusted_are_ignored(
    tmp_path: Path, allowed: str | None
) -> None:
    env = {} if allowed is None else {"FORWARDED_ALLOW_IPS": allowed}
    with ServiceProcess(env, ["--no-worker"], cwd=tmp_path, global_args=["-v"]) as service:
        get_health(service)
    assert "127.0.0.1:" in service.stderr
    assert "203.0.113.9" not in service.output


def test_forwarded_headers_from_a_trusted_proxy_are_used(tmp_path: Path) -> None:
    env = {"FORWARDED_ALLOW_IPS": "127.0.0.1"}
    with ServiceProcess(env, ["--no-worker"], cwd=tmp_path, global_args=["-v"]) as service:
        get_health(service)
    assert '203.0.113.9:0 - "GET /healthz HTTP/1.1" 200' in service.stderr


def test_root_path_prefixes_the_urls_the_service_makes(tmp_path: Path) -> None:
    args = ["--no-worker", "--root-path", "/mailroom/"]
    with ServiceProcess({}, args, cwd=tmp_path) as service:
        # The proxy strips the prefix before passing the request on.
        docs = service.get("/api/v1/docs").text
    assert "'/mailroom/api/v1/openapi.json'" in docs
    assert "behind a proxy at the path /mailroom" in service.stdout


def test_a_root_path_that_is_no_path_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [*serve_args(), "--root-path", "mailroom"],
        env=service_env({}),
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert b"--root-path" in result.stderr
    assert b"must be a URL path starting with /" in result.stderr
