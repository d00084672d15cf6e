"""The OpenAPI schema against the real server: schemathesis generates requests for every
operation (valid and invalid ones, a bounded number each) and checks that no answer is a
500 and every answer matches the schema (status, content type, body, headers). The docs
pages serve their assets locally."""
import os

import pytest
import schemathesis
from django.conf import settings
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.stack

BASE = f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}"
# Examples per operation and mode: a larger budget in CI (CI=true), where the suite has
# time for it within its 15 minutes; a small one for quick local runs.
EXAMPLES = int(os.environ.get("SLUICE_SCHEMATHESIS_EXAMPLES") or (50 if os.environ.get("CI") else 4))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@pytest.fixture
def api_key(key_client):
    api, user, raw_key = key_client()
    # Something of the caller's own for the generated ids to find now and then.
    for name in ("schemathesis", "second"):
        collection = api.post("/collections/", json={"name": name}).json()
        api.post(f"/collections/{collection['id']}/documents/", json={"title": "Otters", "text": "Otters hold hands."})
    return raw_key


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_schema(stack, api_key, mode):
    schema = schemathesis.openapi.from_url(f"{BASE}/api/v1/schema/?format=json")
    headers = {"Authorization": f"Api-Key {api_key}"}
    failures = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:
        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                             suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        def check(case):
            case.call_and_validate(base_url=BASE, headers=headers, checks=CHECKS, timeout=60)

        try:
            check()
        except Unsatisfiable:  # nothing in this operation can be made invalid (GET /health/)
            assert mode == GenerationMode.NEGATIVE and not operation.body and not operation.path_parameters
        except Exception as exc:  # collect every operation's failure, then report them all
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{error}" for label, error in failures.items())


def test_docs_pages_serve_their_assets_locally(api):
    swagger = api.get("/api/v1/docs/")
    assert swagger.status_code == 200 and "/static/drf_spectacular_sidecar/swagger-ui-dist/" in swagger.text
    assert "cdn" not in swagger.text.lower()
    redoc = api.get("/api/v1/redoc/")
    assert redoc.status_code == 200 and "/static/drf_spectacular_sidecar/redoc/" in redoc.text
    asset = api.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000
    schema_body = api.get("/api/v1/schema/?format=json").json()
    operations = {op["operationId"] for path in schema_body["paths"].values() for op in path.values()}
    assert {"search", "query", "task_retrieve", "collection_documents_upload", "collection_shares_create",
            "health"} <= operations
