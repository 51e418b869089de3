"""One Idempotency-Key contract on every route that takes a key (SPEC §10): the same key with the same body
answers the first answer again with `Idempotent-Replayed: true` and changes nothing; the same key with
another body is 409 `idempotency_key_reused`. Both backends."""
import uuid

import pytest

from tests.e2e.helpers import create_agent, create_organization, error_code, ok


def keyed(api, method, path, body, key):
    return api.request(method, path, json=body, headers={"Idempotency-Key": key})


@pytest.fixture
def owner_org_agent(system):
    owner = system.user("owner")
    org = create_organization(owner, "Keyed")["id"]
    return owner, org, create_agent(owner, org, "Keyed agent")["id"]


def routes(org, agent):
    """(method, path, a body, another body) per route that takes a key."""
    return [
        ("POST", "/v1/organizations", {"name": "Once"}, {"name": "Twice"}),
        ("POST", f"/v1/organizations/{org}/agents", {"name": "Once"}, {"name": "Twice"}),
        ("POST", f"/v1/organizations/{org}/invitations", {"email": f"{uuid.uuid4().hex[:8]}@example.com",
                                                          "roles": ["member"]},
         {"email": "someone-else@example.com", "roles": ["member"]}),
        ("POST", f"/v1/organizations/{org}/credits/grants", {"amount": "5", "type": "paid"},
         {"amount": "6", "type": "paid"}),
        ("POST", f"/v1/organizations/{org}/usage", {"agent_id": agent, "amount": "1"},
         {"agent_id": agent, "amount": "2"}),
    ]


def test_the_same_key_replays_and_another_body_is_refused_on_every_keyed_route(owner_org_agent):
    owner, org, agent = owner_org_agent
    for method, path, body, other in routes(org, agent):
        key = uuid.uuid4().hex
        first = keyed(owner, method, path, body, key)
        assert first.status_code == 201, (path, first.text)
        assert "Idempotent-Replayed" not in first.headers, path
        again = keyed(owner, method, path, body, key)
        assert again.status_code == 201, (path, again.text)
        assert again.headers.get("Idempotent-Replayed") == "true", path
        assert again.json()["id"] == first.json()["id"], path
        assert error_code(keyed(owner, method, path, other, key), 409) == "idempotency_key_reused", path
    # Nothing was made twice: one organization "Once" besides the fixture's and the Individual one, one
    # agent "Once", one grant of 5 and one spend of 1 (balance 4).
    names = [card["name"] for card in ok(owner.get("/v1/organizations"))["items"]]
    assert names.count("Once") == 1
    agents = [a["name"] for a in ok(owner.get(f"/v1/organizations/{org}/agents"))["items"]]
    assert agents.count("Once") == 1
    assert ok(owner.get(f"/v1/organizations/{org}/credits"))["balance"] == "4.0000"
