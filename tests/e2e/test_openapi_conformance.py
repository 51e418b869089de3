"""Real answers conform to /openapi.json (issue 14): for a handful of routes (creates, a list with `limit`,
downloads, a dry run, a replayed key, a reused key, errors) each answer's status is documented for its route,
its content type is among the documented ones, a documented header is documented, and its JSON validates
against the documented schema. One backend is enough: the document and the gateway do not depend on it.

jsonschema is not installed, so a small validator of the subset the document uses is here."""
import uuid
from datetime import datetime

import pytest
import requests

from tests.e2e.helpers import create_agent, create_organization, ok

pytestmark = pytest.mark.parametrize("system", ["sqlite"], indirect=True)


class Mismatch(AssertionError):
    pass


def validate(value, schema, document, where="$"):
    """Raise Mismatch where `value` breaks `schema` (OpenAPI 3.0: type, format date-time, enum, nullable,
    required, properties, additionalProperties, items, minimum/maximum, $ref, allOf, oneOf)."""
    if "$ref" in schema:
        return validate(value, resolve(document, schema["$ref"]), document, where)
    if value is None:
        if schema.get("nullable") or not any(k in schema for k in ("type", "$ref", "allOf", "oneOf")):
            return None
        raise Mismatch(f"{where}: null where the document does not allow it")
    for part in schema.get("allOf", ()):
        validate(value, part, document, where)
    if "oneOf" in schema:
        fits = 0
        for part in schema["oneOf"]:
            try:
                validate(value, part, document, where)
                fits += 1
            except Mismatch:
                pass
        if fits != 1:
            raise Mismatch(f"{where}: fits {fits} of the oneOf schemas, not exactly one")
    kind = schema.get("type")
    checks = {"string": lambda v: isinstance(v, str), "integer": lambda v: isinstance(v, int) and v is not True
              and v is not False, "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
              "boolean": lambda v: isinstance(v, bool), "array": lambda v: isinstance(v, list),
              "object": lambda v: isinstance(v, dict)}
    if kind is not None and not checks[kind](value):
        raise Mismatch(f"{where}: {value!r} is not of type {kind}")
    if "enum" in schema and value not in schema["enum"]:
        raise Mismatch(f"{where}: {value!r} is not one of {schema['enum']}")
    if schema.get("format") == "date-time":
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise Mismatch(f"{where}: {value!r} is not a date-time") from None
    if "minimum" in schema and value < schema["minimum"] or "maximum" in schema and value > schema["maximum"]:
        raise Mismatch(f"{where}: {value!r} is out of bounds")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            validate(item, schema["items"], document, f"{where}[{i}]")
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                raise Mismatch(f"{where}: required {name!r} is missing")
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                validate(item, properties[name], document, f"{where}.{name}")
            elif isinstance(schema.get("additionalProperties"), dict):
                validate(item, schema["additionalProperties"], document, f"{where}.{name}")
    return None


def resolve(document, reference):
    node = document
    for part in reference.removeprefix("#/").split("/"):
        node = node[part]
    return node


@pytest.fixture
def document(system):
    return ok(requests.get(system.url + "/openapi.json", timeout=30))


@pytest.fixture
def conforms(document):
    """conforms(response, path template): the answer is one the document gives for that route; its JSON body."""
    def check(response, path):
        method = response.request.method.lower()
        responses = document["paths"][path][method]["responses"]
        status = str(response.status_code)
        assert status in responses, f"{method} {path}: {status} is not documented ({response.text[:200]})"
        documented = responses[status]
        if response.status_code == 204:
            assert not response.content
            return None
        media_type = response.headers["Content-Type"].split(";")[0].strip()
        assert media_type in documented.get("content", {}), f"{method} {path} {status}: {media_type} undocumented"
        for header in ("Idempotent-Replayed", "Content-Disposition"):
            if header in response.headers:
                assert header in documented.get("headers", {}), f"{method} {path} {status}: {header} undocumented"
        if media_type != "application/json":
            return response.text
        body = response.json()
        try:
            validate(body, documented["content"][media_type]["schema"], document)
        except Mismatch as exc:
            raise AssertionError(f"{method} {path} {status}: {exc}") from None
        return body
    return check


def test_creates_lists_and_replays_conform(system, conforms):
    owner = system.user("owner")
    key = uuid.uuid4().hex
    first = owner.post("/v1/organizations", json={"name": "Documented"}, headers={"Idempotency-Key": key})
    org = conforms(first, "/v1/organizations")["id"]
    replay = owner.post("/v1/organizations", json={"name": "Documented"}, headers={"Idempotency-Key": key})
    assert replay.headers.get("Idempotent-Replayed") == "true"
    conforms(replay, "/v1/organizations")
    reused = owner.post("/v1/organizations", json={"name": "Other"}, headers={"Idempotency-Key": key})
    assert reused.status_code == 409
    conforms(reused, "/v1/organizations")
    page = conforms(owner.get("/v1/organizations", params={"limit": 1}), "/v1/organizations")
    assert len(page["items"]) == 1 and page["next_cursor"]
    conforms(owner.get("/v1/organizations", params={"cursor": page["next_cursor"]}), "/v1/organizations")
    conforms(owner.get(f"/v1/organizations/{org}"), "/v1/organizations/{org_id}")
    conforms(owner.get("/v1/me"), "/v1/me")
    invitation = owner.post(f"/v1/organizations/{org}/invitations",
                            json={"email": f"{uuid.uuid4().hex[:8]}@example.com", "roles": ["member"]})
    conforms(invitation, "/v1/organizations/{org_id}/invitations")
    conforms(owner.get(f"/v1/organizations/{org}/invitations", params={"limit": 5, "status": "pending"}),
             "/v1/organizations/{org_id}/invitations")


def test_credits_a_dry_run_and_a_spend_conform(system, conforms):
    owner = system.user("owner")
    org = create_organization(owner, "Spending")["id"]
    agent = conforms(owner.post(f"/v1/organizations/{org}/agents", json={"name": "Nurse"}),
                     "/v1/organizations/{org_id}/agents")["id"]
    conforms(owner.get(f"/v1/organizations/{org}/agents", params={"limit": 10}), "/v1/organizations/{org_id}/agents")
    conforms(owner.post(f"/v1/organizations/{org}/credits/grants", json={"amount": "10", "type": "paid"}),
             "/v1/organizations/{org_id}/credits/grants")
    dry = conforms(owner.post(f"/v1/organizations/{org}/usage",
                              json={"agent_id": agent, "amount": "2", "dry_run": True}),
                   "/v1/organizations/{org_id}/usage")
    assert dry["allowed"] is True
    key = uuid.uuid4().hex
    spend = owner.post(f"/v1/organizations/{org}/usage", json={"agent_id": agent, "amount": "2"},
                       headers={"Idempotency-Key": key})
    assert spend.status_code == 201
    conforms(spend, "/v1/organizations/{org_id}/usage")
    replay = owner.post(f"/v1/organizations/{org}/usage", json={"agent_id": agent, "amount": "2"},
                        headers={"Idempotency-Key": key})
    assert replay.headers.get("Idempotent-Replayed") == "true"
    conforms(replay, "/v1/organizations/{org_id}/usage")
    reused = owner.post(f"/v1/organizations/{org}/usage", json={"agent_id": agent, "amount": "3"},
                        headers={"Idempotency-Key": key})
    assert reused.status_code == 409
    conforms(reused, "/v1/organizations/{org_id}/usage")
    ledger = conforms(owner.get(f"/v1/organizations/{org}/credits/ledger", params={"limit": 50}),
                      "/v1/organizations/{org_id}/credits/ledger")
    assert {entry["kind"] for entry in ledger["items"]} == {"grant", "spend"}   # allocations null and not
    conforms(owner.get(f"/v1/organizations/{org}/credits"), "/v1/organizations/{org_id}/credits")
    conforms(owner.get("/v1/me/usage"), "/v1/me/usage")
    # A repeat PUT answers 200 where the first answered 201.
    group = ok(owner.post(f"/v1/organizations/{org}/budget-groups", json={"name": "Nurses"}), 201)["id"]
    placement = f"/v1/organizations/{org}/budget-groups/{group}/members/{owner.id}"
    template = "/v1/organizations/{org_id}/budget-groups/{group_id}/members/{user_id}"
    for status in (201, 200):
        placed = owner.put(placement)
        assert placed.status_code == status, placed.text
        conforms(placed, template)
    conforms(owner.get(f"/v1/organizations/{org}/budget-groups/{group}"),
             "/v1/organizations/{org_id}/budget-groups/{group_id}")


def test_downloads_conform(system, conforms):
    owner = system.user("owner")
    org = create_organization(owner, "Exports")["id"]
    create_agent(owner, org, "Exported")
    members_path = "/v1/organizations/{org_id}/members"
    csv_text = conforms(owner.get(f"/v1/organizations/{org}/members", params={"format": "csv"}), members_path)
    assert csv_text.startswith("user_id,name,email")
    conforms(owner.get(f"/v1/organizations/{org}/members", params={"limit": 1, "sort": "-name"}), members_path)
    audit_path = "/v1/organizations/{org_id}/audit"
    exported = conforms(owner.get(f"/v1/organizations/{org}/audit", params={"format": "json"}), audit_path)
    assert exported["complete"] is True and exported["entries"] and exported["organization_id"] == org
    verdict = conforms(owner.get(f"/v1/organizations/{org}/audit/verify"), "/v1/organizations/{org_id}/audit/verify")
    assert verdict["intact"] is True
    conforms(owner.get(f"/v1/organizations/{org}/audit/checkpoints"), "/v1/organizations/{org_id}/audit/checkpoints")
    conforms(owner.get("/v1/audit/public-key"), "/v1/audit/public-key")
    assert conforms(owner.get(f"/v1/organizations/{org}/audit", params={"format": "csv"}), audit_path)
    conforms(owner.get(f"/v1/organizations/{org}/audit", params={"limit": 2}), audit_path)


def test_errors_conform(system, conforms):
    owner = system.user("owner")
    org = create_organization(owner, "Errors")["id"]
    members_path = "/v1/organizations/{org_id}/members"
    for params, status in [({"cursor": "not-a-cursor"}, 400), ({"limit": 0}, 422), ({"role": "king"}, 422)]:
        response = owner.get(f"/v1/organizations/{org}/members", params=params)
        assert response.status_code == status, response.text
        conforms(response, members_path)
    anonymous = requests.get(f"{system.url}/v1/organizations/{org}/members", timeout=30)
    assert anonymous.status_code == 401
    conforms(anonymous, members_path)
    missing = owner.get(f"/v1/organizations/{uuid.uuid4()}/members")
    assert missing.status_code == 404
    conforms(missing, members_path)
    deep = owner.post("/v1/organizations", data="[" * 100 + "]" * 100, headers={"Content-Type": "application/json"})
    assert deep.status_code == 400
    conforms(deep, "/v1/organizations")
    conforms(requests.get(system.url + "/health", timeout=30), "/health")
