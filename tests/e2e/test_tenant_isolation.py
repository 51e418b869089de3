"""Tenant isolation: an Owner of organization A gets 404 for every route of organization B, with B's
real ids in the path (its members, invitations, billing transfers, agents, budget groups), and nothing in B
changes: not its name, members, agents, balance, ledger or budget groups."""
import re

import gateway.service  # noqa: F401  (defining the handlers fills the route registry)
from gateway.http import ROUTES
from tests.e2e.helpers import audit_entries, create_agent, create_organization, invite, join, ok, wait_for


def bodies(org_a, b_member, agent_id):
    """A valid body per route (by handler name), so that only the organization check can refuse it."""
    return {
        "rename_organization": {"name": "Taken over"},
        "edit_member_roles": {"roles": ["owner"]},
        "invite": {"email": "intruder@example.com", "roles": ["owner"]},
        "start_billing_transfer": {"to_user_id": b_member.id},
        "create_agent": {"name": "Planted"},
        "update_agent": {"name": "Hijacked", "instructions": "Leak everything"},
        "add_contributor": {"user_id": b_member.id},
        "transfer_agent": {"destination_organization_id": org_a, "dry_run": False},
        "add_grant": {"amount": "1000", "type": "paid"},
        "spend": {"agent_id": agent_id, "amount": "1"},
        "create_budget_group": {"name": "Planted"},
        "update_budget_group": {"monthly_limit": None},
        "create_api_key": {"name": "Planted", "scopes": ["usage:write"]},
        "add_payment_method": {"provider_payment_method_id": "pm_card_visa"},
        "purchase": {"amount_usd": "5.00"},
        "set_auto_topup": {"enabled": True, "threshold": "1000", "target": "5000"},
        "create_webhook_endpoint": {"url": "http://127.0.0.1:9/planted", "event_types": ["*"]},
        "update_webhook_endpoint": {"url": "http://127.0.0.1:9/hijacked"},
    }


def test_a_member_of_one_organization_gets_404_for_every_route_of_another(system):
    alice, bob = system.user("alice"), system.user("bob")
    org_a = create_organization(alice, "A")["id"]
    org_b = create_organization(bob, "B")["id"]
    bob_member = join(system, bob, org_b, ["member"], "member")
    invitation = invite(bob, org_b, "pending@example.com", ["member"])
    transfer = ok(bob.post(f"/v1/organizations/{org_b}/billing-transfers", json={"to_user_id": bob_member.id}), 201)
    agent = create_agent(bob, org_b, "B's agent", instructions="B's secret sauce")
    ok(bob.put(f"/v1/organizations/{org_b}/agents/{agent['id']}/assignees/{bob_member.id}"), 201)
    ok(bob.post(f"/v1/organizations/{org_b}/credits/grants", json={"amount": "10", "type": "paid"}), 201)
    group = ok(bob.post(f"/v1/organizations/{org_b}/budget-groups", json={"name": "B's group", "monthly_limit": "2"}),
               201)
    ok(bob.put(f"/v1/organizations/{org_b}/budget-groups/{group['id']}/members/{bob_member.id}"), 201)
    ok(bob_member.post(f"/v1/organizations/{org_b}/usage", json={"agent_id": agent["id"], "amount": "1.5"},
                       headers={"Idempotency-Key": "b-spend"}), 201)
    key = ok(bob.post(f"/v1/organizations/{org_b}/api-keys", json={"name": "B's key", "scopes": ["usage:read"]}), 201)
    card = ok(bob.post(f"/v1/organizations/{org_b}/payment-methods",
                       json={"provider_payment_method_id": "pm_card_visa"}), 201)
    endpoint = ok(bob.post(f"/v1/organizations/{org_b}/webhooks",
                           json={"url": "http://127.0.0.1:9/b", "event_types": ["budget_group.deleted"]}), 201)
    delivery = ok(bob.post(f"/v1/organizations/{org_b}/webhooks/{endpoint['id']}/test"), 201)
    ids = {"org_id": org_b, "user_id": bob_member.id, "invitation_id": invitation["id"], "transfer_id": transfer["id"],
           "agent_id": agent["id"], "group_id": group["id"], "key_id": key["id"], "payment_method_id": card["id"],
           "endpoint_id": endpoint["id"], "delivery_id": delivery["id"]}
    trail_before = wait_for(lambda: (lambda e: e if len(e) >= 15 else None)(audit_entries(bob, org_b)),
                            message="B's audit entries")
    ledger_before = ok(bob.get(f"/v1/organizations/{org_b}/credits/ledger"))["items"]
    group_before = ok(bob.get(f"/v1/organizations/{org_b}/budget-groups/{group['id']}"))

    checked = []
    for route in ROUTES:
        if "<org_id>" not in route.path:
            continue
        path = re.sub(r"<(\w+)>", lambda m: ids[m.group(1)], route.path)
        body = bodies(org_a, bob_member, agent["id"]).get(route.handler, {})
        response = alice.request(route.method, path, json=body if route.method in ("POST", "PATCH", "PUT") else None,
                                 headers={"Idempotency-Key": f"isolation-{route.handler}"})
        assert response.status_code == 404, f"{route.method} {path}: {response.status_code} {response.text}"
        assert response.json()["error"]["code"] == "organization_not_found", response.text
        checked.append(route.handler)
    assert len(checked) >= 41, checked   # every organization route of today, none skipped silently

    # Nothing in B changed: name, members, the invitation, the transfer, the webhook endpoint, the trail.
    assert ok(bob.get(f"/v1/organizations/{org_b}/webhooks/{endpoint['id']}"))["url"] == "http://127.0.0.1:9/b"
    assert ok(bob.get(f"/v1/organizations/{org_b}"))["name"] == "B"
    assert sorted(m["user_id"] for m in ok(bob.get(f"/v1/organizations/{org_b}/members"))["items"]) == \
        sorted([bob.id, bob_member.id])
    assert ok(bob.get(f"/v1/organizations/{org_b}/invitations", params={"status": "pending"}))["items"][0]["id"] == \
        invitation["id"]
    assert ok(bob.get(f"/v1/organizations/{org_b}/billing-transfers"))["items"][0]["status"] == "pending"
    assert len(audit_entries(bob, org_b)) == len(trail_before)
    b_agent = ok(bob.get(f"/v1/organizations/{org_b}/agents/{agent['id']}"))
    assert (b_agent["name"], b_agent["instructions"], b_agent["organization_id"], b_agent["assignees"]) == \
        ("B's agent", "B's secret sauce", org_b, [bob_member.id])
    assert [a["id"] for a in ok(bob.get(f"/v1/organizations/{org_b}/agents"))["items"]] == [agent["id"]]
    assert ok(alice.get(f"/v1/organizations/{org_a}/agents"))["items"] == []
    assert ok(bob.get(f"/v1/organizations/{org_b}/credits"))["balance"] == "8.5000"
    assert ok(bob.get(f"/v1/organizations/{org_b}/credits/ledger"))["items"] == ledger_before
    assert ok(bob.get(f"/v1/organizations/{org_b}/payment-methods"))["items"] == [card]
    assert ok(bob.get(f"/v1/organizations/{org_b}/transactions"))["items"] == []
    assert ok(bob.get(f"/v1/organizations/{org_b}/auto-topup"))["enabled"] is False
    assert ok(bob.get(f"/v1/organizations/{org_b}/budget-groups/{group['id']}")) == group_before
    assert [(k["id"], k["status"]) for k in ok(bob.get(f"/v1/organizations/{org_b}/api-keys"))["items"]] == \
        [(key["id"], "active")]
    # B's budget group and agent through A's path: not found.
    for method, rest in [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("PUT", f"/members/{alice.id}"),
                         ("DELETE", f"/members/{bob_member.id}")]:
        response = alice.request(method, f"/v1/organizations/{org_a}/budget-groups/{group['id']}{rest}",
                                 json={} if method == "PATCH" else None)
        assert response.status_code == 404 and response.json()["error"]["code"] == "budget_group_not_found", \
            (method, rest, response.text)
    response = alice.post(f"/v1/organizations/{org_a}/usage", json={"agent_id": agent["id"], "amount": "1"},
                          headers={"Idempotency-Key": "borrowed-agent"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "agent_not_found"
    # A's own ids do not open B's things either: B's invitation through A's path.
    response = alice.post(f"/v1/organizations/{org_a}/invitations/{invitation['id']}/revoke")
    assert response.status_code == 404 and response.json()["error"]["code"] == "invitation_not_found"
    response = alice.post(f"/v1/organizations/{org_a}/billing-transfers/{transfer['id']}/cancel")
    assert response.status_code == 404 and response.json()["error"]["code"] == "billing_transfer_not_found"
    response = alice.patch(f"/v1/organizations/{org_a}/members/{bob_member.id}", json={"roles": ["member"]})
    assert response.status_code == 404 and response.json()["error"]["code"] == "member_not_found"
    # B's agent through A's path: not found, whatever the route.
    other_a = create_organization(alice, "A2")["id"]
    for method, rest, body in [("GET", "", None), ("PATCH", "", {"name": "Mine"}), ("DELETE", "", None),
                               ("GET", "/audit", None), ("GET", "/contributors", None),
                               ("PUT", f"/assignees/{alice.id}", None),
                               ("POST", "/transfer", {"destination_organization_id": other_a, "dry_run": True})]:
        response = alice.request(method, f"/v1/organizations/{org_a}/agents/{agent['id']}{rest}", json=body)
        assert response.status_code == 404 and response.json()["error"]["code"] == "agent_not_found", \
            (method, rest, response.text)
    # ...nor can B's agent be named in an invitation to A.
    response = alice.post(f"/v1/organizations/{org_a}/invitations",
                          json={"email": "someone@example.com", "roles": ["member"], "agent_ids": [agent["id"]]})
    assert response.status_code == 422 and response.json()["error"]["code"] == "unknown_agent"
