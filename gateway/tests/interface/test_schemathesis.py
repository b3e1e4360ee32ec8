"""Property-based checks of the running gateway against its own OpenAPI document (schemathesis 4).

The schema is loaded from ``/openapi.json`` over HTTP; for every operation a bounded, derandomised
number of generated requests is sent with an admin bearer token: none may be answered with a 5xx, and
every answer must conform to the document (status, content type, body schema).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from gateway.endpoints import ROUTES
from gateway.tests.interface.support import Platform, bearer

ADMIN = bearer("admin", "ops-fuzz")
MAX_EXAMPLES = 15
OPERATION_IDS = [route.operation_id for route in ROUTES]

@pytest.fixture(scope="module")
def api_schema(platform: Platform):
    return schemathesis.openapi.from_url(f"{platform.url}/openapi.json", timeout=30)


@pytest.fixture(scope="module")
def seeded(platform: Platform) -> None:
    """Some data, so that lists are not all empty."""
    platform.add_nurse()
    patient = platform.register()
    platform.book(patient)


def test_every_operation_of_the_document_is_fuzzed(api_schema):
    documented = {operation["operationId"] for item in api_schema.raw_schema["paths"].values()
                  for operation in item.values() if isinstance(operation, dict) and "operationId" in operation}
    assert documented == set(OPERATION_IDS)


def fuzz(platform: Platform, api_schema, operation_id: str, mode: GenerationMode, checks: list) -> None:
    operation = api_schema.find_operation_by_id(operation_id)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def generated(case):
        case.call_and_validate(base_url=platform.url, headers=ADMIN, timeout=30,
                               checks=checks)

    generated()


@pytest.mark.parametrize("operation_id", OPERATION_IDS)
def test_generated_requests_get_no_server_error_and_conforming_responses(platform, seeded, api_schema, operation_id):
    fuzz(platform, api_schema, operation_id, GenerationMode.POSITIVE, [not_a_server_error, response_schema_conformance])


@pytest.mark.parametrize("operation_id", OPERATION_IDS)
def test_invalid_generated_requests_get_no_server_error(platform, seeded, api_schema, operation_id):
    fuzz(platform, api_schema, operation_id, GenerationMode.NEGATIVE, [not_a_server_error])
