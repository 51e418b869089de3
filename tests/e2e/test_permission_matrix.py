"""product rules §2's permission matrix, run through the gateway against the running system: every action
that has a route, as a holder of each single role and as a non-member.

The table below is written from product rules §2 by hand, not imported from common.permissions, so that a
wrong matrix in the code fails here.

Agent rows: the agent is assigned to the actor (so a Member or Builder sees it and a refusal is a 403,
not a 404), and a Builder is made a contributor for "edit an agent one contributes to". A Billing-only
member cannot see agents at all, so where seeing decides (editing) they get 404 agent_not_found; where
the role alone decides (Owner/Admin-only actions, using agents at all) they get the 403 without the
agent being looked up.

Using agents (spending credit through them, product rules §2 "use agents"): Owner/Admin any agent, a Builder
those they contribute to or are assigned, a Member those assigned to them. An agent a Builder or
Member may not use is one they cannot see: 404 agent_not_found, like an unknown id.
"""
import pytest

from tests.e2e.helpers import agent_names, create_agent, create_organization, hand_billing_to, invite, join, ok

ROLES = ("owner", "admin", "builder", "member", "billing", "non-member")

ALLOWED = {   # action -> roles that may do it (product rules §2)
    "rename the organization": {"owner", "admin"},
    "delete the organization": {"owner", "admin"},
    "invite": {"owner", "admin"},
    "revoke an invitation": {"owner", "admin"},
    "edit member roles": {"owner", "admin"},
    "remove a member": {"owner", "admin"},
    "view billing and credits": {"owner", "billing"},
    "view the audit trail": {"owner", "admin"},
    "view the member list": {"owner", "admin", "builder", "member", "billing"},
    "create an agent": {"owner", "admin", "builder"},
    "edit an agent one contributes to": {"owner", "admin", "builder"},
    "edit an agent one does not contribute to": {"owner", "admin"},
    "delete an agent": {"owner", "admin"},
    "manage an agent's contributors": {"owner", "admin"},
    "assign an agent": {"owner", "admin"},
    "transfer an agent": {"owner", "admin"},
    "view an agent's audit trail": {"owner", "admin"},
    "add credit": {"owner", "billing"},
    "view the ledger": {"owner", "billing"},
    "use an agent assigned to one": {"owner", "admin", "builder", "member"},
    "use an agent one contributes to": {"owner", "admin", "builder"},
    "use an agent neither assigned nor contributed to": {"owner", "admin"},
    "create a budget group": {"owner", "admin"},
    "edit a budget group": {"owner", "admin"},
    "delete a budget group": {"owner", "admin"},
    "put a member in a budget group": {"owner", "admin"},
    "view budget groups": {"owner", "admin"},
    "create an API key": {"owner", "admin"},                      # SPEC §9
    "set budget alerts": {"owner", "admin", "billing"},           # issue 15; product rules §5
    "add a payment method": {"owner", "billing"},                 # SPEC §11: the roles that see billing
    "set the default payment method": {"owner", "billing"},
    "remove a payment method": {"owner", "billing"},
    "buy credit": {"owner", "billing"},
    "view transactions": {"owner", "billing"},
    "set auto top-up": {"owner", "billing"},
    "view auto top-up": {"owner", "billing"},
    "verify the audit trail": {"owner", "admin"},                 # SPEC §13: those who see the trail
    "add a webhook endpoint": {"owner", "admin"},                 # SPEC §12
    "view webhook endpoints": {"owner", "admin"},
    "send a webhook test": {"owner", "admin"},
    "list the audit checkpoints": {"owner", "admin"},
}
EDIT_AGENT = {"edit an agent one contributes to", "edit an agent one does not contribute to"}
REFUSAL_CODE = {"transfer an agent": "source_role_required"}
USE_AGENT = {"use an agent assigned to one", "use an agent one contributes to",
             "use an agent neither assigned nor contributed to"}


def organization_with(system, role):
    """A fresh organization founded by someone else, and an actor holding exactly `role` in it."""
    founder = system.user("founder")
    org = create_organization(founder, "Matrix")["id"]
    if role == "non-member":
        outsider = system.user("outsider")
        outsider.outsider = True
        return founder, org, outsider
    actor = join(system, founder, org, ["member" if role == "billing" else role], role)
    if role == "billing":
        hand_billing_to(founder, org, actor)
        ok(founder.patch(f"/v1/organizations/{org}/members/{actor.id}", json={"roles": ["billing"]}))
    return founder, org, actor


def roles_in_member_list(founder, org, person):
    """The person's roles as members (the owner of memberships) answers, None if not a member: read at
    the source, not through another service's read model, which follows within the event lag."""
    members = ok(founder.get(f"/v1/organizations/{org}/members", params={"q": person.email}))["items"]
    return next((m["roles"] for m in members if m["user_id"] == person.id), None)


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
        return response, lambda: roles_in_member_list(founder, org, target) == ["builder"]
    if action == "remove a member":
        target = join(system, founder, org, ["member"], "target")
        response = actor.delete(f"{base}/members/{target.id}")
        return response, lambda: roles_in_member_list(founder, org, target) is None
    if action == "view billing and credits":
        return actor.get(f"{base}/credits"), None
    if action == "view the audit trail":
        return actor.get(f"{base}/audit"), None
    if action == "verify the audit trail":
        return actor.get(f"{base}/audit/verify"), None
    if action == "list the audit checkpoints":
        return actor.get(f"{base}/audit/checkpoints"), None
    if action == "view the member list":
        return actor.get(f"{base}/members"), None
    if action == "add credit":
        response = actor.post(f"{base}/credits/grants", json={"amount": "5", "type": "paid"})
        return response, lambda: ok(founder.get(f"{base}/credits"))["balance"] == "5.0000"
    if action == "view the ledger":
        return actor.get(f"{base}/credits/ledger"), None
    if action == "create an API key":
        response = actor.post(f"{base}/api-keys", json={"name": "By the actor", "scopes": ["usage:read"]})
        return response, lambda: len(ok(founder.get(f"{base}/api-keys"))["items"]) == 1
    if action == "set budget alerts":
        response = actor.put(f"{base}/alert-settings", json={"member_budget_percents": [80], "balance_floor": None})
        return response, lambda: ok(founder.get(f"{base}/alert-settings"))["member_budget_percents"] == [80]
    if action in BUDGET_GROUP_ACTIONS:
        return budget_group_attempt(system, action, founder, org, actor)
    if action in BILLING_ACTIONS:
        return billing_attempt(action, founder, org, actor)
    if action in WEBHOOK_ACTIONS:
        return webhook_attempt(action, founder, org, actor)
    if action in USE_AGENT:
        return use_attempt(action, founder, org, actor)
    if action == "create an agent":
        response = actor.post(f"{base}/agents", json={"name": "By the actor"})
        return response, lambda: agent_names(founder, org) == ["By the actor"]
    agent = create_agent(founder, org, "The agent")
    path = f"{base}/agents/{agent['id']}"
    if not hasattr(actor, "outsider"):
        ok(founder.put(f"{path}/assignees/{actor.id}"), 201)
    if action == "edit an agent one contributes to":
        if not hasattr(actor, "outsider") and "builder" in ok(actor.get(base))["roles"]:
            ok(founder.post(f"{path}/contributors", json={"user_id": actor.id}), 201)
        response = actor.patch(path, json={"mission": "Changed"})
        return response, lambda: ok(founder.get(path))["mission"] == "Changed"
    if action == "edit an agent one does not contribute to":
        response = actor.patch(path, json={"mission": "Changed"})
        return response, lambda: ok(founder.get(path))["mission"] == "Changed"
    if action == "delete an agent":
        response = actor.delete(path)
        return response, lambda: founder.get(path).status_code == 404
    if action == "manage an agent's contributors":
        target = join(system, founder, org, ["builder"], "target")
        response = actor.post(f"{path}/contributors", json={"user_id": target.id})
        return response, lambda: target.id in ok(founder.get(path))["contributors"]
    if action == "assign an agent":
        target = join(system, founder, org, ["member"], "target")
        response = actor.put(f"{path}/assignees/{target.id}")
        return response, lambda: target.id in ok(founder.get(path))["assignees"]
    if action == "transfer an agent":
        own = create_organization(actor, "The actor's own")["id"]
        response = actor.post(f"{path}/transfer", json={"destination_organization_id": own, "dry_run": False})
        return response, lambda: founder.get(path).status_code == 404
    if action == "view an agent's audit trail":
        return actor.get(f"{path}/audit"), None
    raise AssertionError(action)


WEBHOOK_ACTIONS = {"add a webhook endpoint", "view webhook endpoints", "send a webhook test"}
# An endpoint nothing is sent to in these tests: it subscribes to one type the test never makes happen, and
# the test message goes to the discard port (its failed tries are the delivery log's business).
QUIET_ENDPOINT = {"url": "http://127.0.0.1:9/matrix", "event_types": ["budget_group.deleted"]}


def webhook_attempt(action, founder, org, actor):
    hooks = f"/v1/organizations/{org}/webhooks"
    if action == "add a webhook endpoint":
        response = actor.post(hooks, json=QUIET_ENDPOINT)
        return response, lambda: len(ok(founder.get(hooks))["items"]) == 1
    if action == "view webhook endpoints":
        return actor.get(hooks), None
    endpoint = ok(founder.post(hooks, json=QUIET_ENDPOINT), 201)
    response = actor.post(f"{hooks}/{endpoint['id']}/test")
    return response, lambda: len(ok(founder.get(f"{hooks}/{endpoint['id']}/deliveries"))["items"]) == 1


BUDGET_GROUP_ACTIONS = {"create a budget group", "edit a budget group", "delete a budget group",
                        "put a member in a budget group", "view budget groups"}


def budget_group_attempt(system, action, founder, org, actor):
    groups = f"/v1/organizations/{org}/budget-groups"
    if action == "create a budget group":
        response = actor.post(groups, json={"name": "By the actor", "monthly_limit": "10"})
        return response, lambda: [g["name"] for g in ok(founder.get(groups))["items"]] == ["By the actor"]
    group = ok(founder.post(groups, json={"name": "Team"}), 201)
    path = f"{groups}/{group['id']}"
    if action == "edit a budget group":
        response = actor.patch(path, json={"monthly_limit": "3.5"})
        return response, lambda: ok(founder.get(path))["monthly_limit"] == "3.5000"
    if action == "delete a budget group":
        response = actor.delete(path)
        return response, lambda: founder.get(path).status_code == 404
    if action == "put a member in a budget group":
        target = join(system, founder, org, ["member"], "target")
        response = actor.put(f"{path}/members/{target.id}")
        return response, lambda: [m["user_id"] for m in ok(founder.get(path))["members"]["items"]] == [target.id]
    return actor.get(groups), None


BILLING_ACTIONS = {"add a payment method", "set the default payment method", "remove a payment method", "buy credit",
                   "view transactions", "set auto top-up", "view auto top-up"}


def billing_attempt(action, founder, org, actor):
    cards = f"/v1/organizations/{org}/payment-methods"
    if action == "add a payment method":
        response = actor.post(cards, json={"provider_payment_method_id": "pm_card_visa"})
        return response, lambda: len(ok(founder.get(cards))["items"]) == 1
    if action == "view transactions":
        return actor.get(f"/v1/organizations/{org}/transactions"), None
    if action == "view auto top-up":
        return actor.get(f"/v1/organizations/{org}/auto-topup"), None
    if action == "set auto top-up":
        response = actor.put(f"/v1/organizations/{org}/auto-topup",
                             json={"enabled": False, "threshold": "10", "target": "600"})
        return response, lambda: ok(founder.get(f"/v1/organizations/{org}/auto-topup"))["target"] == "600.0000"
    first = ok(founder.post(cards, json={"provider_payment_method_id": "pm_card_visa"}), 201)
    if action == "buy credit":
        response = actor.post(f"/v1/organizations/{org}/purchases", json={"amount_usd": "5.00"},
                              headers={"Idempotency-Key": "matrix"})
        return response, lambda: ok(founder.get(f"/v1/organizations/{org}/credits"))["balance"] == "500.0000"
    if action == "remove a payment method":
        response = actor.delete(f"{cards}/{first['id']}")
        return response, lambda: ok(founder.get(cards))["items"] == []
    second = ok(founder.post(cards, json={"provider_payment_method_id": "pm_card_visa"}), 201)    # another card
    response = actor.put(f"{cards}/{second['id']}/default")
    return response, lambda: [c["is_default"] for c in ok(founder.get(cards))["items"]] == [False, True]


def use_attempt(action, founder, org, actor):
    """A spend through an agent the actor is assigned to, contributes to (Builders), or neither."""
    base = f"/v1/organizations/{org}"
    ok(founder.post(f"{base}/credits/grants", json={"amount": "10", "type": "paid"}), 201)
    agent = create_agent(founder, org, "The agent")
    path = f"{base}/agents/{agent['id']}"
    member = not hasattr(actor, "outsider")
    if member and action == "use an agent assigned to one":
        ok(founder.put(f"{path}/assignees/{actor.id}"), 201)
    if member and action == "use an agent one contributes to" and "builder" in ok(actor.get(base))["roles"]:
        ok(founder.post(f"{path}/contributors", json={"user_id": actor.id}), 201)
    response = actor.post(f"{base}/usage", json={"agent_id": agent["id"], "amount": "1.25"},
                          headers={"Idempotency-Key": "matrix"})
    return response, lambda: ok(founder.get(f"{base}/credits"))["balance"] == "8.7500"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ALLOWED))
def test_permission_matrix(system, action, role):
    founder, org, actor = organization_with(system, role)
    response, took_effect = attempt(system, action, founder, org, actor)
    if role in ALLOWED[action]:
        assert response.status_code in (200, 201, 204), response.text
    elif role == "non-member":   # non-members cannot even see the organization
        assert (response.status_code, response.json()["error"]["code"]) == (404, "organization_not_found")
    elif role == "billing" and action in EDIT_AGENT:   # nor can Billing-only members see agents
        assert (response.status_code, response.json()["error"]["code"]) == (404, "agent_not_found")
    elif role in ("builder", "member") and action in USE_AGENT:   # an agent they may not use is one they cannot see
        assert (response.status_code, response.json()["error"]["code"]) == (404, "agent_not_found")
    else:
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == REFUSAL_CODE.get(action, "forbidden")
    if took_effect is not None:
        assert took_effect() == (role in ALLOWED[action])
