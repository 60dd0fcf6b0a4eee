"""One real ``mailroom serve`` per test module (see :mod:`support.api_service`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.api_service import ApiService, running_api_service


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiService]:
    with running_api_service(tmp_path_factory.mktemp("service")) as running:
        yield running
    assert running.watch.checked > 0
