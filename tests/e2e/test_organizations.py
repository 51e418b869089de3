"""Organizations end to end: through the gateway, every service running, a real RabbitMQ, on SQLite
and on PostgreSQL (the `system` fixture runs each test once per backend)."""
import csv
import io
import uuid

import pytest

from tests.e2e.helpers import audit_entries, stored_entries, types_of, wait_for
from tests.e2e.helpers import create_organization as collective


def cards(api):
    response = api.get("/v1/organizations")
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_first_request_creates_the_individual_organization(system):
    alice = system.user("alice")
    [card] = cards(alice)
    assert card["type"] == "individual"
    assert card["roles"] == ["owner", "billing"]
    assert card["member_count"] == 1 and card["active"] is True
    me = alice.get("/v1/me").json()
    assert me["id"] == alice.id and me["email"] == alice.email
    assert me["active_organization_id"] == card["id"]
    # Seen again: still exactly one.
    assert [c["id"] for c in cards(alice)] == [card["id"]]


def test_create_trims_the_name_and_makes_the_creator_owner_and_billing(system):
    alice = system.user("alice")
    org = collective(alice, "   Sehat Clinic  ")
    assert org["name"] == "Sehat Clinic" and org["type"] == "collective"
    assert org["roles"] == ["owner", "billing"] and org["member_count"] == 1 and org["active"] is False
    listed = {c["id"]: c for c in cards(alice)}
    assert listed[org["id"]]["name"] == "Sehat Clinic"


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "   "}, {"name": None}])
def test_create_without_a_name_is_refused_with_the_exact_message(system, body):
    alice = system.user("alice")
    response = alice.post("/v1/organizations", json=body)
    assert response.status_code == 422
    assert response.json() == {"error": {"code": "name_required", "field": "name",
                                         "message": "Organization name is required."}}
    assert len(cards(alice)) == 1   # nothing was created


def test_name_of_200_characters_is_accepted_and_201_refused(system):
    alice = system.user("alice")
    ok = alice.post("/v1/organizations", json={"name": "x" * 200})
    assert ok.status_code == 201 and ok.json()["name"] == "x" * 200
    too_long = alice.post("/v1/organizations", json={"name": "y" * 201})
    assert too_long.status_code == 422
    assert too_long.json()["error"] == {"code": "name_too_long", "field": "name",
                                        "message": "Name must be 200 characters or fewer."}
    # Trimming happens before counting.
    assert alice.post("/v1/organizations", json={"name": "  " + "z" * 200 + "  "}).status_code == 201
    assert sorted(len(c["name"]) for c in cards(alice) if c["type"] == "collective") == [200, 200]


@pytest.mark.parametrize("raw, code", [("not json", "invalid_json"), ("[1, 2]", "invalid_json")])
def test_malformed_bodies_are_400(system, raw, code):
    alice = system.user("alice")
    response = alice.post("/v1/organizations", data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == code


def test_wrong_types_and_unknown_fields_are_422(system):
    alice = system.user("alice")
    for body, field in [({"name": 42}, "name"), ({"name": "ok", "owner": "me"}, "owner")]:
        response = alice.post("/v1/organizations", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == field
    assert len(cards(alice)) == 1


def test_idempotency_key_creates_once(system):
    alice = system.user("alice")
    key = str(uuid.uuid4())
    first = alice.post("/v1/organizations", json={"name": "Once"}, headers={"Idempotency-Key": key})
    again = alice.post("/v1/organizations", json={"name": "Once"}, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert [c["name"] for c in cards(alice)].count("Once") == 1


def test_rename_follows_the_create_rules(system):
    alice = system.user("alice")
    org = collective(alice, "Old name")
    response = alice.patch(f"/v1/organizations/{org['id']}", json={"name": "  New name "})
    assert response.status_code == 200 and response.json()["name"] == "New name"
    assert alice.patch(f"/v1/organizations/{org['id']}", json={"name": " "}).json()["error"]["message"] == \
        "Organization name is required."
    assert alice.patch(f"/v1/organizations/{org['id']}", json={"name": "n" * 201}).json()["error"]["message"] == \
        "Name must be 200 characters or fewer."
    assert alice.get(f"/v1/organizations/{org['id']}").json()["name"] == "New name"


def test_switch_active_organization_and_fall_back_when_it_is_deleted(system):
    alice = system.user("alice")
    individual = cards(alice)[0]
    org = collective(alice)
    me = alice.put("/v1/me/active-organization", json={"organization_id": org["id"]})
    assert me.status_code == 200 and me.json()["active_organization_id"] == org["id"]
    assert {c["id"]: c["active"] for c in cards(alice)} == {individual["id"]: False, org["id"]: True}
    assert alice.delete(f"/v1/organizations/{org['id']}").status_code == 204
    assert alice.get("/v1/me").json()["active_organization_id"] == individual["id"]
    assert [c["id"] for c in cards(alice)] == [individual["id"]]
    assert alice.get(f"/v1/organizations/{org['id']}").status_code == 404


def test_cannot_switch_into_an_organization_one_does_not_belong_to(system):
    alice, bob = system.user("alice"), system.user("bob")
    bobs = collective(bob, "Bob's")
    response = alice.put("/v1/me/active-organization", json={"organization_id": bobs["id"]})
    assert response.status_code == 404
    unknown = alice.put("/v1/me/active-organization", json={"organization_id": str(uuid.uuid4())})
    assert unknown.status_code == 404
    missing = alice.put("/v1/me/active-organization", json={})
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "organization_id"


def test_individual_organization_cannot_be_deleted(system):
    alice = system.user("alice")
    individual = cards(alice)[0]
    response = alice.delete(f"/v1/organizations/{individual['id']}")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "individual_organization"
    assert cards(alice)[0]["id"] == individual["id"]


def test_organizations_of_others_answer_404_to_everything(system):
    alice, mallory = system.user("alice"), system.user("mallory")
    org = collective(alice, "Private")
    path = f"/v1/organizations/{org['id']}"
    for response in (mallory.get(path), mallory.patch(path, json={"name": "Mine"}), mallory.delete(path),
                     mallory.get(path + "/audit")):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "organization_not_found"
    assert alice.get(path).json()["name"] == "Private"
    assert org["id"] not in [c["id"] for c in cards(mallory)]


def test_requests_without_or_with_a_bad_token_are_401(system):
    import requests

    from gateway import tokens
    url = system.url + "/v1/organizations"
    assert requests.get(url).status_code == 401
    assert requests.get(url).json()["error"]["code"] == "missing_token"
    forged = tokens.jwt.encode({"sub": "x", "email": "x@example.com"}, "not-the-secret", algorithm="HS256")
    for header in ("Bearer nonsense", f"Bearer {forged}", "Basic abc",
                   f"Bearer {tokens.mint('x', 'x@example.com', ttl_seconds=-10)}"):
        response = requests.get(url, headers={"Authorization": header})
        assert response.status_code == 401, header
    assert requests.post(url, json={"name": "x"}).status_code == 401


def test_unknown_routes_are_json_404(system):
    alice = system.user("alice")
    response = alice.get("/v1/nothing-here")
    assert response.status_code == 404 and response.json()["error"]["code"] == "route_not_found"


def test_list_is_paged_with_a_cursor(system):
    alice = system.user("alice")
    for i in range(4):
        collective(alice, f"Org {i}")
    seen, cursor = [], None
    while True:
        body = alice.get("/v1/organizations", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [c["name"] for c in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == ["Alice", "Org 0", "Org 1", "Org 2", "Org 3"]
    assert alice.get("/v1/organizations", params={"cursor": "garbage!"}).status_code == 400
    assert alice.get("/v1/organizations", params={"limit": 0}).status_code == 422


def test_health_and_openapi(system):
    import requests
    health = requests.get(system.url + "/health").json()
    assert health == {"status": "ok", "rabbitmq": "ok",
                      "services": {"orgs": "ok", "members": "ok", "credits": "ok", "billing": "ok", "audit": "ok",
                                   "webhooks": "ok"}}
    document = requests.get(system.url + "/openapi.json").json()
    assert "/v1/organizations/{org_id}" in document["paths"]


def test_each_change_is_exactly_one_audit_entry(system):
    alice = system.user("alice")
    org = collective(alice, "Audited")
    alice.patch(f"/v1/organizations/{org['id']}", json={"name": "Audited twice"})
    alice.put("/v1/me/active-organization", json={"organization_id": org["id"]})
    expected = ["member.added", "organization.created", "organization.renamed", "user.active_organization_changed"]
    entries = wait_for(lambda: (lambda e: e if types_of(e) == expected else None)(audit_entries(alice, org["id"])),
                       message="four audit entries")
    by_type = {e["type"]: e for e in entries}
    created = by_type["organization.created"]
    assert created["actor"] == {"id": alice.id, "email": alice.email}
    assert (created["entity_type"], created["entity_id"], created["action"]) == ("organization", org["id"], "create")
    assert {c["field"]: (c["old_value"], c["new_value"]) for c in created["changes"]} == \
        {"name": (None, "Audited"), "type": (None, "collective")}
    renamed = by_type["organization.renamed"]
    assert renamed["action"] == "update"
    assert renamed["changes"] == [{"field": "name", "old_value": "Audited", "new_value": "Audited twice"}]
    # A rename to the same name changes nothing and records nothing.
    alice.patch(f"/v1/organizations/{org['id']}", json={"name": "Audited twice"})
    # Deleting: one more entry; the trail is kept (read from the audit database: nobody is a member now).
    assert alice.delete(f"/v1/organizations/{org['id']}").status_code == 204
    final = wait_for(lambda: (lambda e: e if len(e) == 5 else None)(stored_entries(system, org["id"])),
                     message="the deletion entry")
    deleted = [e for e in final if e["type"] == "organization.deleted"]
    assert len(deleted) == 1 and deleted[0]["action"] == "delete"
    assert deleted[0]["changes"] == [{"field": "name", "old_value": "Audited twice", "new_value": None},
                                     {"field": "type", "old_value": "collective", "new_value": None}]
    assert types_of(final) == sorted(expected + ["organization.deleted"])


def test_audit_trail_filters_and_paging(system):
    alice = system.user("alice")
    org = collective(alice, "Filters")
    for i in range(3):
        alice.patch(f"/v1/organizations/{org['id']}", json={"name": f"Name {i}"})
    wait_for(lambda: len(audit_entries(alice, org["id"])) == 5, message="five entries")
    renames = audit_entries(alice, org["id"], action="update", field="name")
    assert [e["changes"][0]["new_value"] for e in renames] == ["Name 2", "Name 1", "Name 0"]   # newest first
    assert len(audit_entries(alice, org["id"], entity_type="member")) == 1
    assert len(audit_entries(alice, org["id"], actor=alice.email)) == 5
    assert audit_entries(alice, org["id"], actor="somebody-else") == []
    first = alice.get(f"/v1/organizations/{org['id']}/audit", params={"limit": 2}).json()
    second = alice.get(f"/v1/organizations/{org['id']}/audit",
                       params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert len(first["items"]) == len(second["items"]) == 2
    assert not {e["event_id"] for e in first["items"]} & {e["event_id"] for e in second["items"]}
    bad = alice.get(f"/v1/organizations/{org['id']}/audit", params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "since"
    csv_export = alice.get(f"/v1/organizations/{org['id']}/audit", params={"format": "csv"})
    assert csv_export.status_code == 200 and csv_export.headers["Content-Type"].startswith("text/csv")
    assert csv_export.text.count("organization.renamed") == 3
    # Values as a person reads them: text as text (before: JSON, "\"Name 0\""), empty for null.
    rows = list(csv.DictReader(io.StringIO(csv_export.text)))
    assert [row["new_value"] for row in rows if row["type"] == "organization.renamed"] == ["Name 2", "Name 1", "Name 0"]
    assert {row["old_value"] for row in rows if row["type"] == "organization.created"} == {""}
    json_export = alice.get(f"/v1/organizations/{org['id']}/audit", params={"format": "json"}).json()
    assert len(json_export["entries"]) == 5


def test_concurrent_first_requests_create_one_individual_organization(system):
    import eventlet
    newcomer = system.user("newcomer")
    pool = eventlet.GreenPool(10)
    statuses = list(pool.imap(lambda _: newcomer.get("/v1/organizations").status_code, range(10)))
    assert statuses == [200] * 10
    assert [c["type"] for c in cards(newcomer)] == ["individual"]


def test_concurrent_creates_with_one_idempotency_key_create_one_organization(system):
    import eventlet
    alice = system.user("alice")
    alice.get("/v1/me")
    key = str(uuid.uuid4())
    pool = eventlet.GreenPool(8)
    responses = list(pool.imap(lambda _: alice.post("/v1/organizations", json={"name": "Raced"},
                                                    headers={"Idempotency-Key": key}), range(8)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert [c["name"] for c in cards(alice)].count("Raced") == 1
