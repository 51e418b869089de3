"""A poison message on quorum queues (issue 24): an event a reaction always fails on (an agent.created whose
agent state lacks its fields: members and credits, which keep agents' access, raise on it and requeue it) is
delivered BROKER_DELIVERY_LIMIT + 1 times, then dead-lettered into the `dead-letters` queue, once per queue
it died in; changes made meanwhile and afterwards reach the audit trail and the read models; the operator's
route lists it (its queue, event id, reason) without consuming it, and refuses any other token.

Its own RabbitMQ node: the session's broker runs classic queues, and a queue cannot change type in place."""
import json
import shutil
import tempfile
import time
import uuid

import pytest
import requests
from kombu import Connection

from common.events import CHANGE_EXCHANGE, CREDITS_QUEUE, MEMBERS_QUEUE, change_event
from devtools.system import Broker, free_broker_port, free_port
from gateway import tokens
from tests.conftest import RunningSystem
from tests.e2e.helpers import audit_entries, create_agent, create_organization, error_code, ok, wait_for

DELIVERY_LIMIT = 3
OPERATOR_TOKEN = "operator-" + uuid.uuid4().hex
DEAD_LETTERS = "/v1/operations/dead-letters"


@pytest.fixture(scope="module")
def quorum_system(tmp_path_factory):
    """A node of its own and the whole system on it (SQLite) with quorum queues and a small delivery limit."""
    directory = tempfile.mkdtemp(prefix="orgplatform-rabbit-quorum-")
    broker = Broker(directory, free_broker_port()).start()
    running = RunningSystem(tmp_path_factory.mktemp("quorum-system"), broker.amqp_uri, free_port(),
                            dict(JWT_SECRET=tokens.secret(), LOCALSTRIPE_PORT=str(free_port()),
                                 BROKER_QUEUE_TYPE="quorum", BROKER_DELIVERY_LIMIT=str(DELIVERY_LIMIT),
                                 OPERATOR_TOKEN=OPERATOR_TOKEN))
    try:
        running.start_all()
        yield running, broker
    finally:
        running.stop_all()
        broker.stop()
        shutil.rmtree(directory, ignore_errors=True)


def operator_get(system, token=OPERATOR_TOKEN, **params):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.get(system.url + DEAD_LETTERS, headers=headers, params=params, timeout=30)


def queue_depths(amqp_uri, names):
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        return {name: channel.queue_declare(name, passive=True).message_count for name in names}


def test_a_poison_event_ends_in_the_dead_letter_queue_and_the_others_flow_on(quorum_system, figure):
    system, broker = quorum_system
    alice = system.user("alice")
    org = create_organization(alice, "Poisoned")["id"]
    assert ok(operator_get(system)) == {"total": 0, "dead_letters": []}

    # The queues are quorum queues with the delivery limit (declared otherwise, the broker would refuse).
    with Connection(broker.amqp_uri) as connection:
        for queue in (MEMBERS_QUEUE, CREDITS_QUEUE):
            connection.channel().queue_declare(queue.name, durable=True, auto_delete=False, arguments={
                "x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT, "x-dead-letter-exchange": "dead-letters",
                "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})

    poison = change_event("agent.created", "create", org, {"id": alice.id, "email": alice.email}, "agent",
                          str(uuid.uuid4()), after={"name": "Poison"},
                          state={"agents": [{"agent_id": str(uuid.uuid4())}]})    # no organization, no version
    started = time.monotonic()
    with Connection(broker.amqp_uri, transport_options={"confirm_publish": True}) as connection:
        connection.Producer().publish(json.dumps(poison), exchange=CHANGE_EXCHANGE, routing_key="agent.created",
                                      content_type="application/json", delivery_mode=2,
                                      message_id=poison["event_id"])
    # Meanwhile: changes whose events go through the same queues.
    ok(alice.patch(f"/v1/organizations/{org}", json={"name": "Still flowing"}))
    agent = create_agent(alice, org, "Healthy agent")["id"]

    listed = wait_for(lambda: (lambda body: body if body["total"] >= 2 else None)(ok(operator_get(system))),
                      timeout=30, message="the poison event dead-lettered from members and credits")
    figure(f"a poison event dead-lettered from both queues {time.monotonic() - started:.1f} s after it was "
           f"published (delivery limit {DELIVERY_LIMIT})")
    assert listed["total"] == 2
    assert sorted(letter["queue"] for letter in listed["dead_letters"]) == ["credits.change-events",
                                                                             "members.change-events"]
    for letter in listed["dead_letters"]:
        assert (letter["event_id"], letter["type"], letter["reason"], letter["routing_key"]) == (
            poison["event_id"], "agent.created", "delivery_limit", "agent.created")
        assert letter["delivery_count"] == DELIVERY_LIMIT + 1 and letter["deaths"] == 1
        assert letter["body"]["state"] == poison["state"] and letter["dead_lettered_at"].endswith("Z")
    # Listed, not consumed: the same two again; and nothing of it is left looping in the consumers' queues.
    assert ok(operator_get(system, limit=1)) == {"total": 2, "dead_letters": listed["dead_letters"][:1]}
    assert ok(operator_get(system))["total"] == 2
    wait_for(lambda: set(queue_depths(broker.amqp_uri, ["members.change-events", "credits.change-events"]).values())
             == {0}, message="the consumers' queues empty")

    # Afterwards too: the trail holds every change (and the poison's own entry: audit stores any event),
    # and credits' read models know the new agent and the member (a spend through it succeeds).
    ok(alice.patch(f"/v1/organizations/{org}", json={"name": "After the poison"}))
    wanted = {"organization.renamed", "agent.created"}
    entries = wait_for(lambda: (lambda e: e if len([x for x in e if x["type"] in wanted]) >= 4 else None)(
        audit_entries(alice, org)), message="the trail")
    assert [e["changes"] for e in entries if e["type"] == "organization.renamed"][0][0]["new_value"] == \
        "After the poison"
    ok(alice.post(f"/v1/organizations/{org}/credits/grants", json={"amount": "10", "type": "paid"}), 201)
    wait_for(lambda: alice.post(f"/v1/organizations/{org}/usage", json={"agent_id": agent, "amount": "1.5"},
                                headers={"Idempotency-Key": f"after-poison-{uuid.uuid4().hex}"}).status_code == 201,
             message="a spend through the new agent")


def test_the_dead_letters_take_the_operators_token(quorum_system):
    system, _ = quorum_system
    assert error_code(operator_get(system, token=None), 401) == "operator_token_required"
    assert error_code(operator_get(system, token=OPERATOR_TOKEN + "x"), 401) == "invalid_operator_token"
    assert error_code(operator_get(system, token=tokens.mint("u1", "u1@example.com")), 401) == "invalid_operator_token"
    assert error_code(operator_get(system, limit=0), 422) == "validation_error"
    assert error_code(operator_get(system, limit=201), 422) == "validation_error"
    assert error_code(operator_get(system, limit="many"), 422) == "validation_error"
