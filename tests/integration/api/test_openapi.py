"""The OpenAPI document describes every operation, parameter and field, with examples."""

import json
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from herald_api.pagination import encode_cursor
from herald_api.validation import time_zone_names

ERROR_REF = "#/components/schemas/ErrorResponse"


@pytest.fixture(scope="module")
async def spec(anonymous: httpx.AsyncClient) -> dict[str, Any]:
    response = await anonymous.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _api_operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if path.startswith("/api/v1")
    ]


def test_every_rest_operation_of_the_contract_is_there(spec: dict[str, Any]) -> None:
    operations = {(method.upper(), path) for method, path, _ in _api_operations(spec)}

    assert operations == {
        ("POST", "/api/v1/clients"),
        ("GET", "/api/v1/clients"),
        ("POST", "/api/v1/clients/import"),
        ("GET", "/api/v1/clients/{client_id}"),
        ("PATCH", "/api/v1/clients/{client_id}"),
        ("DELETE", "/api/v1/clients/{client_id}"),
        ("POST", "/api/v1/mailings"),
        ("GET", "/api/v1/mailings"),
        ("POST", "/api/v1/mailings/preview"),
        ("GET", "/api/v1/mailings/{mailing_id}"),
        ("PATCH", "/api/v1/mailings/{mailing_id}"),
        ("DELETE", "/api/v1/mailings/{mailing_id}"),
        ("POST", "/api/v1/mailings/{mailing_id}/pause"),
        ("POST", "/api/v1/mailings/{mailing_id}/resume"),
        ("POST", "/api/v1/mailings/{mailing_id}/cancel"),
        ("GET", "/api/v1/mailings/{mailing_id}/messages"),
        ("GET", "/api/v1/mailings/{mailing_id}/stats"),
        ("GET", "/api/v1/stats"),
    }


def test_every_operation_is_described_tagged_secured_and_documents_its_errors(
    spec: dict[str, Any],
) -> None:
    for method, path, operation in _api_operations(spec):
        where = f"{method} {path}"
        assert operation.get("description"), where
        assert operation.get("summary"), where
        assert operation.get("tags"), where
        assert operation.get("security") == [{"HTTPBearer": []}], where
        responses = operation["responses"]
        assert {"401", "422"} <= set(responses), where
        if "{" in path:
            assert "404" in responses, where
        if method in ("post", "patch"):
            assert "413" in responses, where
        for status, response in responses.items():
            assert response.get("description"), (where, status)
            if status.startswith("4"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, (where, status)


def test_patch_of_clients_and_create_of_clients_document_the_409(spec: dict[str, Any]) -> None:
    assert "409" in spec["paths"]["/api/v1/clients"]["post"]["responses"]
    assert "409" in spec["paths"]["/api/v1/clients/{client_id}"]["patch"]["responses"]
    assert "409" in spec["paths"]["/api/v1/mailings/{mailing_id}"]["patch"]["responses"]


def test_every_parameter_has_a_description_and_an_example(spec: dict[str, Any]) -> None:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                where = f"{method} {path} {parameter['name']}"
                assert parameter.get("description"), where
                assert parameter.get("examples") or parameter.get("example") is not None, where


def test_every_schema_field_has_a_description_and_an_example(spec: dict[str, Any]) -> None:
    missing = []
    for name, schema in spec["components"]["schemas"].items():
        for field, definition in schema.get("properties", {}).items():
            if not definition.get("description"):
                missing.append(f"{name}.{field}: description")
            if "examples" not in definition and "example" not in definition:
                missing.append(f"{name}.{field}: example")

    assert missing == []


def test_request_bodies_and_the_error_shape_are_documented(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert set(schemas["ErrorResponse"]["properties"]) == {"error"}
    assert set(schemas["ErrorBody"]["properties"]) == {"code", "message", "fields"}
    assert "text/csv" in spec["paths"]["/api/v1/clients/import"]["post"]["requestBody"]["content"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "1000" in schemas["MailingCreate"]["properties"]["text"]["description"]
    tags = {tag["name"] for tag in spec["tags"]}
    assert {"clients", "mailings", "stats"} <= tags


def _allows(spec: dict[str, Any], schema: dict[str, Any], value: Any) -> bool:
    """Whether ``value`` is valid against ``schema``, a part of the served document."""
    rooted = {**schema, "components": spec["components"]}
    return bool(Draft202012Validator(rooted, format_checker=FormatChecker()).is_valid(value))


def _component(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ("ClientUpdate", "phone"),
        ("ClientUpdate", "operator_code"),
        ("ClientUpdate", "timezone"),
        ("MailingUpdate", "text"),
        ("MailingUpdate", "start_at"),
        ("MailingUpdate", "end_at"),
    ],
)
def test_patch_fields_that_reject_null_do_not_allow_it(
    spec: dict[str, Any], schema: str, field: str
) -> None:
    assert not _allows(spec, _component(schema), {field: None})
    assert _allows(spec, _component(schema), {})


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ("ClientUpdate", "tag"),
        ("MailingUpdate", "filter"),
        ("MailingUpdate", "send_window"),
        ("MailingUpdate", "max_rate"),
    ],
)
def test_patch_fields_that_null_removes_allow_it(
    spec: dict[str, Any], schema: str, field: str
) -> None:
    assert _allows(spec, _component(schema), {field: None})


@pytest.mark.parametrize("schema", ["MailingCreate", "MailingUpdate"])
def test_the_max_rate_schema_states_its_range(spec: dict[str, Any], schema: str) -> None:
    max_rate = spec["components"]["schemas"][schema]["properties"]["max_rate"]

    for allowed in (None, 100_000, 50, 0.01):
        assert _allows(spec, max_rate, allowed), allowed
    for refused in (0, 0.001, -1, 100_000.5, "fast", "10", True):
        assert not _allows(spec, max_rate, refused), refused
    assert "messages/s" in max_rate["description"]
    assert "HERALD_PROBE_RATE_LIMIT" in max_rate["description"]


def test_time_zones_are_one_component_listing_every_accepted_zone(spec: dict[str, Any]) -> None:
    zones = spec["components"]["schemas"]["TimeZoneName"]

    assert set(zones["enum"]) == time_zone_names()
    for schema in ("ClientCreate", "ClientUpdate"):
        timezone = spec["components"]["schemas"][schema]["properties"]["timezone"]
        assert timezone["$ref"] == "#/components/schemas/TimeZoneName"
    assert not _allows(spec, _component("TimeZoneName"), "")
    # One copy of ~600 names keeps the whole document small.
    assert len(json.dumps(spec)) < 100_000


def test_the_cursor_parameter_allows_exactly_the_cursors_the_api_reads(
    spec: dict[str, Any],
) -> None:
    for path in ("/api/v1/clients", "/api/v1/mailings", "/api/v1/stats"):
        (cursor,) = (p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == "cursor")
        assert _allows(spec, cursor["schema"], encode_cursor(1234))
        for unreadable in ("", "0" * 63, "MTIzNA"):
            assert not _allows(spec, cursor["schema"], unreadable), (path, unreadable)


def test_the_csv_import_body_must_start_with_a_header(spec: dict[str, Any]) -> None:
    content = spec["paths"]["/api/v1/clients/import"]["post"]["requestBody"]["content"]
    csv_schema = content["text/csv"]["schema"]

    assert _allows(spec, csv_schema, "phone,timezone\n79991234567,UTC\n")
    assert _allows(spec, csv_schema, content["text/csv"]["example"])
    for headerless in ("", "\n", "79991234567,UTC\n", "phone\n", "phone,timezone,phone\n"):
        assert not _allows(spec, csv_schema, headerless), headerless
    # Every NDJSON body is read; a line that is not a client is reported, not rejected.
    assert _allows(spec, content["application/x-ndjson"]["schema"], {"not": "a client"})


def test_the_cross_field_rule_is_stated_where_the_schema_cannot_state_it(
    spec: dict[str, Any],
) -> None:
    for schema in ("MailingCreate", "MailingUpdate"):
        properties = spec["components"]["schemas"][schema]["properties"]
        assert "before end_at" in properties["start_at"]["description"]
        assert "cannot express" in properties["start_at"]["description"]
        assert "after start_at" in properties["end_at"]["description"]
    window = spec["components"]["schemas"]["SendWindow"]["properties"]
    assert "differ from start" in window["end"]["description"]
    assert "cannot express" in window["end"]["description"]
