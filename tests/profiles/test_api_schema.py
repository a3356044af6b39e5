"""The OpenAPI schema documents every member endpoint with its errors; the docs page loads offline."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db

ERROR_REF = "#/components/schemas/Error"
ENDPOINTS = {
    ("/api/v1/auth/wx-login", "post"): {"200", "400", "403", "404", "429", "503"},
    ("/api/v1/auth/refresh", "post"): {"200", "400", "401", "403", "429"},
    ("/api/v1/me", "get"): {"200", "401", "403"},
    ("/api/v1/me", "delete"): {"204", "401", "403"},
    ("/api/v1/me/consent", "patch"): {"200", "400", "401", "403"},
    ("/api/v1/me/export", "get"): {"200", "401", "403"},
    ("/api/v1/events", "post"): {"200", "400", "401", "403", "413", "415"},
}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def _ref(response: dict) -> str | None:
    return response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")


@pytest.mark.parametrize(("path", "method"), sorted(ENDPOINTS))
def test_endpoint_documents_its_errors_in_the_contract_shape(schema, path, method):
    operation = schema["paths"][path][method]
    assert set(operation["responses"]) == ENDPOINTS[(path, method)]
    for status, response in operation["responses"].items():
        if status.startswith(("4", "5")):
            assert _ref(response) == ERROR_REF, (path, method, status)
    signed_in = not path.startswith("/api/v1/auth/")
    assert operation.get("security") == ([{"memberToken": []}] if signed_in else None)


def test_error_and_event_batch_shapes(schema):
    components = schema["components"]["schemas"]
    assert components["Error"]["required"] == ["error"]
    assert set(components["ErrorBody"]["properties"]) == {"code", "message", "details"}
    event = components["Event"]
    assert event["required"] == ["event_id", "kind", "ts"]
    assert event["properties"]["ts"]["oneOf"] == [{"type": "string", "format": "date-time"},
                                                   {"type": "integer", "format": "int64"}]
    assert components["EventBatch"]["properties"]["events"]["maxItems"] == 500
    assert set(components["EventBatchResult"]["properties"]) == {"accepted", "duplicates", "rejected"}
    assert set(components["Rejection"]["properties"]) == {"index", "code", "message"}


def test_swagger_ui_is_served_from_our_static_files(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn" not in page.lower()
