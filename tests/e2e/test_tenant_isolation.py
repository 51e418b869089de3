"""Tenant isolation: an Owner of organization A gets 404 for every route of organization B, with B's
real ids in the path (its members, invitations, billing transfers), and nothing in B changes."""
import re

import gateway.service  # noqa: F401  (defining the handlers fills the route registry)
from gateway.http import ROUTES
from tests.e2e.helpers import audit_entries, create_organization, invite, join, ok, wait_for

BODIES = {
    "rename_organization": {"name": "Taken over"},
    "edit_member_roles": {"roles": ["owner"]},
    "invite": {"email": "intruder@example.com", "roles": ["owner"]},
    "start_billing_transfer": None,   # filled in with a member of B
}


def test_a_member_of_one_organization_gets_404_for_every_route_of_another(system):
    alice, bob = system.user("alice"), system.user("bob")
    org_a = create_organization(alice, "A")["id"]
    org_b = create_organization(bob, "B")["id"]
    bob_member = join(system, bob, org_b, ["member"], "member")
    invitation = invite(bob, org_b, "pending@example.com", ["member"])
    transfer = ok(bob.post(f"/v1/organizations/{org_b}/billing-transfers", json={"to_user_id": bob_member.id}), 201)
    ids = {"org_id": org_b, "user_id": bob_member.id, "invitation_id": invitation["id"], "transfer_id": transfer["id"]}
    trail_before = wait_for(lambda: (lambda e: e if len(e) >= 6 else None)(audit_entries(bob, org_b)),
                            message="B's audit entries")

    checked = []
    for route in ROUTES:
        if "<org_id>" not in route.path:
            continue
        path = re.sub(r"<(\w+)>", lambda m: ids[m.group(1)], route.path)
        body = BODIES.get(route.handler, {})
        if route.handler == "start_billing_transfer":
            body = {"to_user_id": bob_member.id}
        response = alice.request(route.method, path, json=body if route.method in ("POST", "PATCH", "PUT") else None)
        assert response.status_code == 404, f"{route.method} {path}: {response.status_code} {response.text}"
        assert response.json()["error"]["code"] == "organization_not_found", response.text
        checked.append(route.handler)
    assert len(checked) >= 17, checked   # every organization route of today, none skipped silently

    # Nothing in B changed: name, members, the invitation, the transfer, the trail.
    assert ok(bob.get(f"/v1/organizations/{org_b}"))["name"] == "B"
    assert sorted(m["user_id"] for m in ok(bob.get(f"/v1/organizations/{org_b}/members"))["items"]) == \
        sorted([bob.id, bob_member.id])
    assert ok(bob.get(f"/v1/organizations/{org_b}/invitations", params={"status": "pending"}))["items"][0]["id"] == \
        invitation["id"]
    assert ok(bob.get(f"/v1/organizations/{org_b}/billing-transfers"))["items"][0]["status"] == "pending"
    assert len(audit_entries(bob, org_b)) == len(trail_before)
    # A's own ids do not open B's things either: B's invitation through A's path.
    response = alice.post(f"/v1/organizations/{org_a}/invitations/{invitation['id']}/revoke")
    assert response.status_code == 404 and response.json()["error"]["code"] == "invitation_not_found"
    response = alice.post(f"/v1/organizations/{org_a}/billing-transfers/{transfer['id']}/cancel")
    assert response.status_code == 404 and response.json()["error"]["code"] == "billing_transfer_not_found"
    response = alice.patch(f"/v1/organizations/{org_a}/members/{bob_member.id}", json={"roles": ["member"]})
    assert response.status_code == 404 and response.json()["error"]["code"] == "member_not_found"
