"""Schemathesis against the OpenAPI document a real ``mailroom serve`` serves: generated
requests to every operation, with an admin key, find no server error and no answer that
breaks the documented schema (status codes, content types, bodies, headers).

Each operation gets its own bounded Hypothesis run here, rather than through
``schema.parametrize()``: schemathesis 4's pytest wrapper reads ``request.node._nodeid``,
which pytest 9 no longer has.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.core.result import Ok

from support.api_service import ApiService, running_api_service

EXAMPLES = 15  # per operation; the whole run stays well under a minute
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
"""What the issue asks: no server error, no answer the schema does not describe. Not
``positive_data_acceptance``: a schema cannot say what an email address is, so a
schema-valid ``"to": [""]`` is rightly a 422."""


@pytest.fixture(scope="module")
def schema_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiService]:
    with running_api_service(tmp_path_factory.mktemp("schema")) as running:
        yield running


def test_the_api_answers_every_generated_request_as_documented(
    schema_service: ApiService,
) -> None:
    schema = schemathesis.openapi.from_url(f"{schema_service.url}/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {schema_service.admin_key}"}
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), [r for r in results if not isinstance(r, Ok)]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def answers_as_documented(case: schemathesis.Case[Any]) -> None:
            response = case.call(base_url=schema_service.url, headers=headers)
            schema_service.watch.check_text(response.text, f"{case.method} {case.path}")
            case.validate_response(response, checks=CHECKS, headers=headers)

        answers_as_documented()
