"""SPEC §2's permission matrix, run through the gateway against the running system: every action
that has a route today, as a holder of each single role and as a non-member.

The table below is written from SPEC §2 by hand, not imported from common.permissions, so that a
wrong matrix in the code fails here. Rows whose routes arrive with later issues (budget groups,
agents, using agents) join this table with those issues; common.permissions covers them in
tests/unit/test_permissions.py meanwhile.
"""
import pytest

from tests.e2e.helpers import create_organization, hand_billing_to, invite, join, ok

ROLES = ("owner", "admin", "builder", "member", "billing", "non-member")

ALLOWED = {   # action -> roles that may do it (SPEC §2)
    "rename the organization": {"owner", "admin"},
    "delete the organization": {"owner", "admin"},
    "invite": {"owner", "admin"},
    "revoke an invitation": {"owner", "admin"},
    "edit member roles": {"owner", "admin"},
    "remove a member": {"owner", "admin"},
    "view billing and credits": {"owner", "billing"},
    "view the audit trail": {"owner", "admin"},
    "view the member list": {"owner", "admin", "builder", "member", "billing"},
}


def organization_with(system, role):
    """A fresh organization founded by someone else, and an actor holding exactly `role` in it."""
    founder = system.user("founder")
    org = create_organization(founder, "Matrix")["id"]
    if role == "non-member":
        return founder, org, system.user("outsider")
    actor = join(system, founder, org, ["member" if role == "billing" else role], role)
    if role == "billing":
        hand_billing_to(founder, org, actor)
        ok(founder.patch(f"/v1/organizations/{org}/members/{actor.id}", json={"roles": ["billing"]}))
    return founder, org, actor


def attempt(system, action, founder, org, actor):
    """Try `action` as `actor`; returns (response, check) where check() tells whether it took effect."""
    base = f"/v1/organizations/{org}"
    if action == "rename the organization":
        response = actor.patch(base, json={"name": "Renamed"})
        return response, lambda: ok(founder.get(base))["name"] == "Renamed"
    if action == "delete the organization":
        response = actor.delete(base)
        return response, lambda: founder.get(base).status_code == 404
    if action == "invite":
        response = actor.post(f"{base}/invitations", json={"email": "new@example.com", "roles": ["member"]})
        return response, lambda: len(ok(founder.get(f"{base}/invitations", params={"q": "new@"}))["items"]) == 1
    if action == "revoke an invitation":
        invitation = invite(founder, org, "revoke-me@example.com", ["member"])
        response = actor.post(f"{base}/invitations/{invitation['id']}/revoke")
        return response, lambda: ok(founder.get(f"{base}/invitations", params={"q": "revoke-me@"})
                                    )["items"][0]["status"] == "revoked"
    if action == "edit member roles":
        target = join(system, founder, org, ["member"], "target")
        response = actor.patch(f"{base}/members/{target.id}", json={"roles": ["builder"]})
        return response, lambda: ok(target.get(base))["roles"] == ["builder"]
    if action == "remove a member":
        target = join(system, founder, org, ["member"], "target")
        response = actor.delete(f"{base}/members/{target.id}")
        return response, lambda: target.get(base).status_code == 404
    if action == "view billing and credits":
        return actor.get(f"{base}/credits"), None
    if action == "view the audit trail":
        return actor.get(f"{base}/audit"), None
    if action == "view the member list":
        return actor.get(f"{base}/members"), None
    raise AssertionError(action)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ALLOWED))
def test_permission_matrix(system, action, role):
    founder, org, actor = organization_with(system, role)
    response, took_effect = attempt(system, action, founder, org, actor)
    if role in ALLOWED[action]:
        assert response.status_code in (200, 201, 204), response.text
    else:
        expected = 404 if role == "non-member" else 403    # non-members cannot even see the organization
        assert response.status_code == expected, response.text
        assert response.json()["error"]["code"] == ("organization_not_found" if expected == 404 else "forbidden")
    if took_effect is not None:
        assert took_effect() == (role in ALLOWED[action])
