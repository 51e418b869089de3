"""No change event is lost or stored twice: a service dying between its commit and its publish, an
event delivered twice, a broker restart, replicas. Real broker, real databases, both backends. (The
audit service killed while changes happen and while it drains a backlog: tests/faults/test_audit_killed.py.)"""
import json
import time

from kombu import Connection
from nameko.containers import ServiceContainer
from sqlalchemy import select

from common.db import Store
from common.events import CHANGE_EXCHANGE, change_event
from common.outbox import OutboxRelay
from services.orgs.models import OutboxEvent
from services.orgs.service import OrgsService
from tests.e2e.helpers import audit_entries, stored_entries, wait_for


def publish_raw(broker, bodies, routing_key="organization.renamed"):
    """Publish message bodies straight to the change exchange, as a misbehaving producer would."""
    with Connection(broker.amqp_uri, transport_options={"confirm_publish": True}) as connection:
        producer = connection.Producer()
        for body in bodies:
            producer.publish(body, exchange=CHANGE_EXCHANGE, routing_key=routing_key,
                             content_type="application/json", delivery_mode=2)


def collective(api, name):
    response = api.post("/v1/organizations", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()


def entries_once(api, org_id, count):
    """Wait until the trail holds `count` entries; then check that no event is there twice."""
    entries = wait_for(lambda: (lambda e: e if len(e) >= count else None)(audit_entries(api, org_id)),
                       timeout=30, message=f"{count} audit entries")
    time.sleep(1.5)   # a late duplicate would show up by now
    entries = audit_entries(api, org_id)
    assert len(entries) == count
    assert len({e["event_id"] for e in entries}) == count
    return entries


def test_an_event_delivered_twice_is_stored_once(system, broker):
    alice = system.user("alice")
    org = collective(alice, "Twice")
    entries_once(alice, org["id"], 2)
    event = change_event("organization.renamed", "update", org["id"], alice_actor(alice), "organization",
                         org["id"], before={"name": "Twice"}, after={"name": "Thrice"})
    publish_raw(broker, [json.dumps(event)] * 3)
    entries = entries_once(alice, org["id"], 3)
    assert [e["event_id"] for e in entries].count(event["event_id"]) == 1


def test_a_malformed_message_is_dropped_without_blocking_the_queue(system, broker):
    alice = system.user("alice")
    org = collective(alice, "Poison")
    entries_once(alice, org["id"], 2)
    publish_raw(broker, ['{"event_id": "nope"}', '"just a string"', "{broken json"])
    assert alice.patch(f"/v1/organizations/{org['id']}", json={"name": "After poison"}).status_code == 200
    entries = entries_once(alice, org["id"], 3)
    assert entries[0]["changes"][0]["new_value"] == "After poison"


def alice_actor(api):
    return {"id": api.id, "email": api.email}


def test_a_service_dying_between_commit_and_publish_loses_no_event(system, monkeypatch, environment):
    """The orgs service commits the change and its outbox row, then cannot publish (the relay fails
    after the commit) and dies. The next orgs process relays the row: the audit trail gets it once."""
    alice = system.user("alice")
    alice.get("/v1/me")                     # signed in (Individual organization) beforehand
    orgs_url = system.database_url("orgs")
    environment.set(ORGS_DATABASE_URL=orgs_url)             # for the orgs container in this process

    def broker_unreachable(self, producer):
        raise ConnectionError("simulated: the broker went away after the commit")
    monkeypatch.setattr(OutboxRelay, "publish_once", broker_unreachable)

    system.stop("orgs")
    container = ServiceContainer(OrgsService, {"AMQP_URI": system.env["AMQP_URI"]})
    container.start()
    try:
        response = alice.post("/v1/organizations", json={"name": "Survivor"})
        assert response.status_code == 201, response.text      # acknowledged to the client
        org_id = response.json()["id"]
        time.sleep(1.5)                                          # the relay has tried (and failed)
        with Store(orgs_url).read() as session:
            pending = session.scalars(select(OutboxEvent).where(OutboxEvent.published_at.is_(None))).all()
        assert [e.envelope["target"]["id"] for e in pending if e.type == "organization.created"] == [org_id]
        assert "organization.created" not in [e["type"] for e in stored_entries(system, org_id)]
    finally:
        container.kill()                                         # dies without publishing
    monkeypatch.undo()
    environment.undo()

    system.start("orgs")
    system.wait_healthy()
    entries = entries_once(alice, org_id, 2)
    assert sorted(e["type"] for e in entries) == ["member.added", "organization.created"]


def test_acknowledged_changes_survive_a_broker_restart(system, broker):
    """Events waiting in the audit queue are persistent: a broker restart loses none of them, and the
    services reconnect by themselves."""
    alice = system.user("alice")
    org = collective(alice, "Before restart")
    entries_once(alice, org["id"], 2)
    system.stop("audit")
    for i in range(3):
        assert alice.patch(f"/v1/organizations/{org['id']}", json={"name": f"Kept {i}"}).status_code == 200
    time.sleep(1.5)                       # relayed into the durable queue
    broker.stop()
    broker.start()
    system.start("audit")
    system.wait_healthy(timeout=120)
    entries = entries_once(alice, org["id"], 2 + 3)
    assert sorted(e["changes"][0]["new_value"] for e in entries if e["type"] == "organization.renamed") == \
        ["Kept 0", "Kept 1", "Kept 2"]
    assert alice.patch(f"/v1/organizations/{org['id']}", json={"name": "After restart"}).status_code == 200
    entries_once(alice, org["id"], 2 + 3 + 1)


def test_replicas_share_the_work_and_every_change_is_audited_once(system):
    """Scale-out without code change: a second orgs and a second audit process join the same queues
    (and, on PostgreSQL, the relays claim outbox rows with SKIP LOCKED)."""
    import eventlet
    system.start("orgs", replica=2)
    system.start("audit", replica=2)
    try:
        time.sleep(3)                                   # the replicas are consuming
        alice = system.user("alice")
        org = collective(alice, "Scaled")
        pool = eventlet.GreenPool(10)
        statuses = list(pool.imap(
            lambda i: alice.patch(f"/v1/organizations/{org['id']}", json={"name": f"Scaled {i}"}).status_code,
            range(40)))
        assert statuses == [200] * 40
        entries = entries_once(alice, org["id"], 2 + 40)
        # Each rename replaced exactly what the previous one wrote: no stale `before` under concurrency.
        renames = sorted((e for e in entries if e["type"] == "organization.renamed"), key=lambda e: e["occurred_at"])
        chain = ["Scaled"] + [e["changes"][0]["new_value"] for e in renames]
        assert [e["changes"][0]["old_value"] for e in renames] == chain[:-1]
    finally:
        system.stop("orgs-2")
        system.stop("audit-2")
    orgs_log = (system.log_dir / "orgs-2.log").read_text()
    assert "Traceback" not in orgs_log, orgs_log[-3000:]


def test_two_consumers_reacting_to_one_event_at_once_run_its_effects_once(system, monkeypatch):
    """Two replicas handed the same events at the same moment (common.inbox): the second one's record
    waits for the first one's commit (PostgreSQL; SQLite takes one writer at a time), then finds the
    events recorded and does nothing. Also for two batches that overlap (the audit service)."""
    import uuid

    import eventlet

    from common import inbox
    from common.auth import SYSTEM_ACTOR
    from common.events import parse_change_event
    from services.audit import reactions as audit_reactions
    from services.audit import trail
    from services.members.models import ProcessedEvent

    runs = []

    def slow_effect(session, event):
        runs.append(event["event_id"])
        eventlet.sleep(0.3)             # the other consumer's INSERT comes while this transaction is open
    members_inbox = inbox.Inbox(ProcessedEvent)
    event = {"event_id": str(uuid.uuid4()), "type": "test.delivered_twice"}
    store = Store(system.database_url("members"))
    both = [eventlet.spawn(inbox.react_once, store, members_inbox, event, slow_effect) for _ in range(2)]
    assert sorted(thread.wait() for thread in both) == [False, True]
    assert runs == [event["event_id"]]

    org = str(uuid.uuid4())
    x, y, z = (parse_change_event(change_event("organization.renamed", "update", org, SYSTEM_ACTOR, "organization",
                                               org, before={"name": f"n{i}"}, after={"name": f"n{i + 1}"}))
               for i in range(3))
    real_add_changes = trail.add_changes

    def slow_changes(session, event):
        slow_effect(session, event)
        real_add_changes(session, event)
    monkeypatch.setattr(trail, "add_changes", slow_changes)
    store = Store(system.database_url("audit"))
    first = eventlet.spawn(audit_reactions.handle_change_events, store, [x, y])
    eventlet.sleep(0.1)
    second = eventlet.spawn(audit_reactions.handle_change_events, store, [y, z])
    assert (first.wait(), second.wait()) == (2, 1)
    with store.read() as session:
        stored = session.scalars(select(trail.AuditEntry.event_id).where(trail.AuditEntry.organization_id == org))
        assert sorted(stored) == sorted(e["event_id"] for e in (x, y, z))


def test_the_relay_publishes_a_batch_and_waits_for_its_confirms_once(broker):
    """common.outbox.BatchConfirmingProducer on the real broker: 50 events published without a wait
    each, then every one confirmed, and every one in the queue."""
    import uuid

    from kombu import Connection, Queue

    from common.events import CHANGE_EXCHANGE
    from common.outbox import BatchConfirmingProducer

    key = f"batch.{uuid.uuid4().hex}"
    queue = Queue(f"test-{key}", exchange=CHANGE_EXCHANGE, routing_key=key, durable=False, auto_delete=False)
    with Connection(broker.amqp_uri) as connection:
        queue(connection.default_channel).declare()
        producer = BatchConfirmingProducer(connection)
        for i in range(50):
            producer.publish(json.dumps({"n": i}), exchange=CHANGE_EXCHANGE, routing_key=key,
                             content_type="application/json", delivery_mode=2)
        producer.wait_for_confirms()
        assert producer.unconfirmed == set() and producer.sent == 50
        _, count, _ = connection.default_channel.queue_declare(queue.name, passive=True)
        assert count == 50
        queue(connection.default_channel).delete()
