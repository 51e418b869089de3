"""Bad input never gets a 500: every route of the OpenAPI document, hostile ids, bodies and queries.
Each answer is a 4xx with the JSON error shape (or a success where the input happens to be valid)."""
import json

import requests

NASTY_IDS = ["x" * 5000, "%00", "..%2F..%2Fetc", "ünïcødé-☃", "1 OR 1=1", "null", "-1"]
NASTY_BODIES = ['', 'null', '[]', '"text"', '{"name": {"nested": true}}', '{"name": ["a"]}',
                '{"name": "' + "x" * 70000 + '"}', '{"organization_id": 12}', '{"organization_id": null}',
                '{"name": 1e400}', '\xff\xfe', '{"name": "nul\\u0000inside"}',
                '{"organization_id": "nul\\u0000inside"}', '{"a": ' * 200 + '1' + '}' * 200,
                '{"email": 12, "roles": "owner"}', '{"email": "a@example.com", "roles": [null]}',
                '{"email": "a@example.com", "roles": ["member"], "agent_ids": [1, {}]}',
                '{"roles": ["owner", "owner", "x"]}', '{"to_user_id": 5}', '{"to_user_id": ""}',
                '{"name": "a", "instructions": ["x"]}', '{"name": "a", "avatar_url": "javascript:alert(1)"}',
                '{"name": "a", "unknown": 1}', '{"name": "a", "mission": "' + "m" * 2001 + '"}', '{"user_id": 7}',
                '{"destination_organization_id": 5, "dry_run": "yes"}', '{"destination_organization_id": "x"}',
                '{"amount": 1e400, "type": "paid"}', '{"amount": "1e999999999", "type": "free"}',
                '{"amount": "-0", "type": "paid"}', '{"amount": "0.1", "type": "free", "expires_at": "yesterday"}',
                '{"amount": "0.1", "type": "free", "expires_at": "9999-12-31T23:59:59+14:00"}',
                '{"amount": [1], "type": "credit"}', '{"agent_id": "x", "amount": "1", "dry_run": 1}',
                '{"agent_id": 5, "amount": {"value": 1}}',
                '{"name": "g", "monthly_limit": 1e308, "builder_limit": 1e20}',
                '{"name": "g", "monthly_limit": "1.00001", "builder_limit": true}', '{"monthly_limit": "abc"}']
NASTY_QUERIES = [{"limit": "-1"}, {"limit": "abc"}, {"limit": "100000"}, {"cursor": "!!!"},
                 {"cursor": "eyJvZmZzZXQiOiAiYSJ9"}, {"since": "2026-13-45"}, {"action": "explode"},
                 {"format": "xml"}, {"field": "x" * 3000}]


def check(response, context):
    assert response.status_code < 500, f"{context}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        body = response.json()
        assert set(body["error"]) >= {"code", "message", "field"}, context


def test_no_route_answers_500_to_hostile_input(system):
    alice = system.user("alice")
    own_org = alice.post("/v1/organizations", json={"name": "Target"}).json()["id"]
    # Real ids of the organization's things, so hostile bodies reach the services' own checks.
    real_ids = {"{agent_id}": alice.post(f"/v1/organizations/{own_org}/agents", json={"name": "Agent"}).json()["id"],
                "{user_id}": alice.id,
                "{group_id}": alice.post(f"/v1/organizations/{own_org}/budget-groups", json={"name": "G"}).json()["id"]}
    document = requests.get(system.url + "/openapi.json").json()
    for template, operations in document["paths"].items():
        for method in operations:
            for org_id in [own_org, *NASTY_IDS]:
                path = template.replace("{org_id}", requests.utils.quote(org_id, safe=""))
                for placeholder, real_id in real_ids.items():
                    path = path.replace(placeholder, real_id)
                if method in ("post", "put", "patch"):
                    for body in NASTY_BODIES:
                        response = alice.request(method.upper(), path, data=body.encode("utf-8", "surrogateescape"),
                                                 headers={"Content-Type": "application/json",
                                                          "Idempotency-Key": f"hostile-{len(body)}"})
                        check(response, f"{method} {path[:80]} body={body[:40]!r}")
                for query in NASTY_QUERIES:
                    if method == "get":
                        check(alice.get(path, params=query), f"get {path[:80]} {query}")
    # Nothing of the above changed the organization.
    assert alice.get(f"/v1/organizations/{own_org}").json()["name"] == "Target"
    agent = alice.get(f"/v1/organizations/{own_org}/agents/{real_ids['{agent_id}']}").json()
    assert (agent["name"], agent["organization_id"], agent["instructions"]) == ("Agent", own_org, "")


def test_oversized_and_odd_headers(system):
    alice = system.user("alice")
    for key in ["k" * 500, "tab\tinside"]:
        response = alice.post("/v1/organizations", json={"name": "H"}, headers={"Idempotency-Key": key})
        check(response, f"Idempotency-Key {key[:20]!r}")
        assert response.status_code == 400
    big = alice.post("/v1/organizations", data=json.dumps({"name": "y" * 100000}),
                     headers={"Content-Type": "application/json"})
    assert big.status_code == 400 and big.json()["error"]["code"] == "body_too_large"
