"""Webhooks end to end (SPEC §12), on both backends, with a receiver the test runs on loopback: an event an
endpoint subscribes to arrives, verified with the standardwebhooks library and the endpoint's secret; an
unsubscribed type does not; 500 twice then 200 is three attempts with one webhook-id; 410 disables the
endpoint (audited as the system); a rotation sends both signatures for the overlap; the delivery log, a
retry by hand and a test message; every endpoint change audited, never the secret."""
import json

import pytest
from standardwebhooks.webhooks import Webhook

from devtools.webhook_receiver import Receiver
from tests.e2e.helpers import audit_entries, create_agent, create_organization, error_code, ok, path, wait_for


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


def add_endpoint(owner, org, url, event_types, **fields):
    return ok(owner.post(path(org, "/webhooks"), json={"url": url, "event_types": event_types, **fields}), 201)


def received(receiver, count, message="deliveries"):
    return wait_for(lambda: len(receiver.received) >= count and receiver.received, timeout=20, message=message)


def test_a_subscribed_event_arrives_signed_and_an_unsubscribed_one_does_not(system, receiver):
    owner = system.user("owner")
    org = create_organization(owner, "Hooked")["id"]
    endpoint = add_endpoint(owner, org, receiver.url, ["organization.renamed"], description="CRM sync")
    assert endpoint["secret"].startswith("whsec_") and endpoint["enabled"] is True
    assert "secret" not in ok(owner.get(path(org, f"/webhooks/{endpoint['id']}")))
    create_agent(owner, org, "Not subscribed")
    ok(owner.patch(path(org), json={"name": "Hooked Again"}))
    [(headers, body)] = received(receiver, 1)
    message = Webhook(endpoint["secret"]).verify(body, headers)
    assert message["type"] == "organization.renamed"
    assert message["data"]["changes"] == [{"field": "name", "old_value": "Hooked", "new_value": "Hooked Again"}]
    assert message["data"]["organization_id"] == org and message["data"]["actor"]["id"] == owner.id
    renamed = [e for e in audit_entries(owner, org) if e["type"] == "organization.renamed"]
    assert headers["webhook-id"] == message["data"]["event_id"] == renamed[0]["event_id"]
    # The audit trail's entry and the webhook's data are one shape (the entry adds its place in the chain).
    entry = {k: v for k, v in renamed[0].items() if k not in ("seq", "prev_hash", "hash")}
    assert message["data"] == entry
    [delivery] = ok(owner.get(path(org, f"/webhooks/{endpoint['id']}/deliveries")))["items"]
    assert delivery["status"] == "delivered" and delivery["attempts"][0]["status_code"] == 200
    assert len(receiver.received) == 1                      # the agent's creation was not sent


def test_500_twice_then_200_makes_three_attempts_with_one_webhook_id(system, receiver):
    owner = system.user("owner")
    org = create_organization(owner, "Flaky")["id"]
    endpoint = add_endpoint(owner, org, receiver.url, ["agent.created"])
    receiver.script = [500, 500]
    create_agent(owner, org, "Triage")
    received(receiver, 3)
    assert len({headers["webhook-id"] for headers, _ in receiver.received}) == 1
    assert [Webhook(endpoint["secret"]).verify(body, headers)["type"] for headers, body in receiver.received] == \
        ["agent.created"] * 3
    deliveries = f"/webhooks/{endpoint['id']}/deliveries"
    [delivery] = wait_for(lambda: [d for d in ok(owner.get(path(org, deliveries)))["items"]
                                   if d["status"] == "delivered"], message="the delivery marked delivered")
    assert [a["status_code"] for a in delivery["attempts"]] == [200, 500, 500] and delivery["attempt_count"] == 3
    # By hand: the same delivery again, and a test message.
    ok(owner.post(path(org, f"{deliveries}/{delivery['id']}/retry")))
    test = ok(owner.post(path(org, f"/webhooks/{endpoint['id']}/test")), 201)
    received(receiver, 5)
    ids = [headers["webhook-id"] for headers, _ in receiver.received]
    assert ids[3:] in ([delivery["message_id"], test["message_id"]], [test["message_id"], delivery["message_id"]])


def test_410_disables_the_endpoint_and_the_system_is_audited_for_it(system, receiver):
    owner = system.user("owner")
    org = create_organization(owner, "Gone")["id"]
    endpoint = add_endpoint(owner, org, receiver.url, ["agent.created"])
    receiver.script = [410]
    create_agent(owner, org, "First")
    received(receiver, 1)
    one = path(org, f"/webhooks/{endpoint['id']}")
    disabled = wait_for(lambda: not ok(owner.get(one))["enabled"] and ok(owner.get(one)), message="disabled")
    assert disabled["disabled_reason"] == "the receiver answered 410 Gone"
    [entry] = wait_for(lambda: [e for e in audit_entries(owner, org) if e["type"] == "webhook_endpoint.disabled"],
                       message="the audit entry of the disabling")
    assert entry["actor"] == {"id": "system"}
    create_agent(owner, org, "Second")                                  # nothing more is sent to it
    assert error_code(owner.post(f"{one}/test"), 409) == "endpoint_disabled"
    ok(owner.patch(one, json={"enabled": True}))                        # enabled again by hand
    ok(owner.post(f"{one}/test"), 201)
    received(receiver, 2)
    assert json.loads(receiver.received[1][1])["type"] == "webhook.test"


def test_a_rotation_sends_both_signatures_for_the_overlap_and_no_secret_is_audited(system, receiver):
    owner = system.user("owner")
    org = create_organization(owner, "Rotating")["id"]
    endpoint = add_endpoint(owner, org, receiver.url, ["agent.created"])
    rotated = ok(owner.post(path(org, f"/webhooks/{endpoint['id']}/rotate-secret")))
    assert rotated["secret"] != endpoint["secret"] and rotated["previous_secret_expires_at"]
    create_agent(owner, org, "Signed twice")
    [(headers, body)] = received(receiver, 1)
    assert len(headers["webhook-signature"].split()) == 2
    for secret in (endpoint["secret"], rotated["secret"]):
        assert Webhook(secret).verify(body, headers)["type"] == "agent.created"
    entries = wait_for(lambda: [e for e in audit_entries(owner, org) if e["type"].startswith("webhook_endpoint.")]
                       if len([e for e in audit_entries(owner, org) if e["type"].startswith("webhook_")]) >= 2
                       else None, message="the endpoint's audit entries")
    assert {e["type"] for e in entries} == {"webhook_endpoint.created", "webhook_endpoint.secret_rotated"}
    text = json.dumps(entries)
    assert endpoint["secret"] not in text and rotated["secret"] not in text and "whsec_" not in text


def test_endpoint_rules_and_who_may_manage_them(system, receiver):
    owner = system.user("owner")
    org = create_organization(owner, "Rules")["id"]
    hooks = path(org, "/webhooks")
    refusals = [({"url": "ftp://x.example/h", "event_types": ["*"]}, "invalid_url"),
                ({"url": receiver.url, "event_types": []}, "invalid_event_types"),
                ({"url": receiver.url, "event_types": ["no.such_type"]}, "unknown_event_type"),
                ({"url": receiver.url, "event_types": ["*"], "description": "a\nb"}, "control_character"),
                ({"url": "http://no-such-host.invalid/h", "event_types": ["*"]}, "unresolvable_host"),
                ({"event_types": ["*"]}, "invalid_url")]
    for body, code in refusals:
        assert error_code(owner.post(hooks, json=body), 422) == code, body
    types = ok(owner.get("/v1/webhooks/event-types"))["items"]
    assert "member.added" in types and "credits.spent" in types and "webhook.test" not in types
    for n in range(10):
        add_endpoint(owner, org, receiver.url, ["budget_group.deleted"], description=f"#{n}")
    assert error_code(owner.post(hooks, json={"url": receiver.url, "event_types": ["*"]}), 409) == "too_many_endpoints"
    first = ok(owner.get(hooks, params={"limit": 4}))
    assert len(first["items"]) == 4 and first["next_cursor"]
    one = first["items"][0]
    changed = ok(owner.patch(path(org, f"/webhooks/{one['id']}"), json={"event_types": ["member.added", "*"],
                                                                          "description": "All"}))
    assert changed["event_types"] == ["*"] and changed["description"] == "All"
    ok(owner.delete(path(org, f"/webhooks/{one['id']}")))
    assert error_code(owner.get(path(org, f"/webhooks/{one['id']}")), 404) == "webhook_endpoint_not_found"
    stranger = system.user("stranger")
    assert error_code(stranger.get(hooks), 404) == "organization_not_found"
    other = create_organization(stranger, "Elsewhere")["id"]
    assert error_code(stranger.get(path(other, f"/webhooks/{changed['id']}")), 404) == "webhook_endpoint_not_found"
