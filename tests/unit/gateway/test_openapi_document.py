"""The OpenAPI document walked as a whole: what the issue 14 review found wrong stays right (every route's
statuses, resolvable refs, arrays with items, typed query parameters, nullable and required fields)."""
import pytest

from gateway.http import ROUTES
from gateway.openapi import document, openapi_path
from gateway.service import GatewayService  # noqa: F401  (imports every route module, filling ROUTES)

DOC = document()
SCHEMAS = DOC["components"]["schemas"]
OPERATIONS = [(path, method, op) for path, ops in DOC["paths"].items() for method, op in ops.items()]
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def walk(node, where="#"):
    """Every dict in the document, with where it is."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{where}/{i}")


def resolve(reference):
    node = DOC
    for part in reference.removeprefix("#/").split("/"):
        node = node[part]
    return node


def operation(method, path):
    return DOC["paths"][path][method]


def json_schema(response):
    return response["content"]["application/json"]["schema"]


def test_every_reference_resolves():
    refs = [node["$ref"] for _, node in walk(DOC) if "$ref" in node]
    assert refs
    for reference in refs:
        assert reference.startswith("#/components/schemas/") and resolve(reference), reference


def test_every_array_has_items_and_every_nullable_enum_takes_null():
    for where, node in walk(DOC):
        if node.get("type") == "array":
            assert "items" in node, where
        if node.get("nullable") and "enum" in node:
            assert None in node["enum"], where


def test_every_route_not_public_answers_401_and_every_status_has_a_body_schema():
    public = {openapi_path(r.path): r for r in ROUTES if r.public}
    for path, method, op in OPERATIONS:
        responses = op["responses"]
        assert "400" in responses, (method, path)
        if path in public:      # 401 only where the route checks a token of its own (the operator's)
            assert ("401" in responses) == (401 in public[path].errors) and "security" not in op, (method, path)
            continue
        assert "401" in responses and op["security"] == [{"bearer": []}], (method, path)
        assert "503" in responses, (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
        if "requestBody" in op or any(p["in"] == "query" for p in op["parameters"]):
            assert "422" in responses, (method, path)
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                assert json_schema(response) == ERROR_REF, (method, path, status)
            elif status != "204":
                assert "application/json" in response["content"], (method, path, status)


def test_query_parameters_are_typed_from_the_query_schemas():
    limits = 0
    for path, method, op in OPERATIONS:
        for param in op["parameters"]:
            if param["in"] == "query" and param["name"] == "limit":
                limits += 1
                assert param["schema"] == {"type": "integer", "minimum": 1, "maximum": 200}, (method, path)
    assert limits >= 10
    for r in ROUTES:   # a documented query parameter is one the route's schema loads
        if r.query:
            assert r.query_schema is not None, r.handler
            assert set(r.query) <= set(r.query_schema.fields), r.handler
    role = next(p for p in operation("get", "/v1/organizations/{org_id}/members")["parameters"] if p["name"] == "role")
    assert role["schema"]["enum"] == ["owner", "admin", "builder", "member", "billing"]
    status = next(p for p in operation("get", "/v1/organizations/{org_id}/billing-transfers")["parameters"]
                  if p["name"] == "status")
    assert status["schema"]["enum"] == ["pending", "accepted", "declined", "cancelled"]


@pytest.mark.parametrize("path", ["/v1/organizations", "/v1/organizations/{org_id}/agents",
                                  "/v1/organizations/{org_id}/invitations",
                                  "/v1/organizations/{org_id}/credits/grants", "/v1/organizations/{org_id}/usage"])
def test_keyed_routes_document_the_replay_header_and_the_reused_key(path):
    op = operation("post", path)
    assert "Idempotency-Key" in [p["name"] for p in op["parameters"] if p["in"] == "header"]
    assert op["responses"]["201"]["headers"]["Idempotent-Replayed"]["schema"] == {"type": "string", "enum": ["true"]}
    assert "idempotency_key_reused" in op["responses"]["409"]["description"]


def test_every_success_a_route_gives_is_documented_with_its_schema():
    spend = operation("post", "/v1/organizations/{org_id}/usage")["responses"]
    assert json_schema(spend["200"]) == {"$ref": "#/components/schemas/SpendEvaluation"}
    assert json_schema(spend["201"]) == {"$ref": "#/components/schemas/Spend"}
    for method, path, schema in [
            ("put", "/v1/organizations/{org_id}/agents/{agent_id}/assignees/{user_id}", "AgentPerson"),
            ("post", "/v1/organizations/{org_id}/agents/{agent_id}/contributors", "AgentPerson"),
            ("put", "/v1/organizations/{org_id}/budget-groups/{group_id}/members/{user_id}",
             "BudgetGroupMembership")]:
        responses = operation(method, path)["responses"]
        for status in ("200", "201"):
            assert json_schema(responses[status]) == {"$ref": f"#/components/schemas/{schema}"}, (path, status)
    health = operation("get", "/health")["responses"]
    assert json_schema(health["503"]) == json_schema(health["200"]) == {"$ref": "#/components/schemas/Health"}


def test_downloads_are_documented_as_csv_and_the_verifiable_export():
    members = operation("get", "/v1/organizations/{org_id}/members")["responses"]["200"]["content"]
    assert members["text/csv"]["schema"]["type"] == "string"
    audit = operation("get", "/v1/organizations/{org_id}/audit")["responses"]["200"]["content"]
    assert audit["text/csv"]["schema"]["type"] == "string"
    assert audit["application/json"]["schema"]["oneOf"] == [
        {"$ref": "#/components/schemas/AuditPage"}, {"$ref": "#/components/schemas/AuditExport"}]
    assert {"seq", "prev_hash", "hash"} <= set(SCHEMAS["AuditEntry"]["properties"])
    assert set(SCHEMAS["AuditExport"]["properties"]) == {"organization_id", "exported_at", "complete", "entries",
                                                         "checkpoints"}


def test_answers_are_nullable_required_formatted_and_enumerated():
    ledger = SCHEMAS["LedgerEntry"]
    assert ledger["properties"]["allocations"]["nullable"] is True
    assert set(ledger["required"]) == set(ledger["properties"])
    assert SCHEMAS["OrganizationCard"]["properties"]["permissions"]["items"]["type"] == "string"
    assert not [where for where, node in walk(SCHEMAS) if "optional" in node]   # metadata, not a keyword
    assert "details" not in SCHEMAS["ErrorDetail"]["required"]
    assert "email" not in SCHEMAS["Actor"]["required"]
    for name, schema in SCHEMAS.items():
        for prop, spec in schema["properties"].items():
            if prop.endswith("_at") and not name.endswith("Body"):
                assert spec.get("format") == "date-time", (name, prop)
    assert SCHEMAS["Member"]["properties"]["roles"]["items"]["enum"] == ["owner", "admin", "builder", "member",
                                                                         "billing"]
    assert SCHEMAS["Grant"]["properties"]["type"]["enum"] == ["free", "paid"]
    assert "credits.spent" in SCHEMAS["AuditEntry"]["properties"]["type"]["enum"]
    assert SCHEMAS["Allowance" if "Allowance" in SCHEMAS else "SpendEvaluation"]["properties"]["binding_limit"][
        "enum"] == ["balance", "budget_group"]


def test_request_bodies_require_only_what_they_load_as_required():
    assert SCHEMAS["SpendBody"]["required"] == ["agent_id"]
    assert "required" not in SCHEMAS["AgentBody"]
