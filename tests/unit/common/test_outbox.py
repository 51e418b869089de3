"""The outbox relay marks an event published only once the broker confirmed it."""
import pytest
from sqlalchemy import select

from common import outbox
from common.events import change_event
from services.orgs.models import OutboxEvent


class FlakyProducer:
    def __init__(self, fail_after):
        self.fail_after, self.sent = fail_after, []

    def publish(self, body, **kwargs):
        if len(self.sent) >= self.fail_after:
            raise ConnectionError("broker unreachable")
        self.sent.append((kwargs["routing_key"], kwargs["delivery_mode"]))


def add_events(store, count):
    with store.write() as session:
        for i in range(count):
            outbox.record(session, OutboxEvent, change_event(
                "organization.renamed", "update", "o1", {"id": "alice"}, "organization", "o1",
                before={"name": str(i)}, after={"name": str(i + 1)}))


def unpublished(store):
    with store.read() as session:
        return len(session.scalars(select(OutboxEvent).where(OutboxEvent.published_at.is_(None))).all())


@pytest.fixture(params=["sqlite", "postgres"])
def orgs_store(request, make_store):
    """A fresh orgs database on each backend (the relay claims rows its own way on PostgreSQL)."""
    if request.param == "sqlite":
        return make_store("orgs")
    import uuid

    from common.db import Store
    from common.migrate import upgrade
    url = request.getfixturevalue("postgres").create_database(f"orgs_outbox_{uuid.uuid4().hex[:8]}")
    upgrade("orgs", url)
    return Store(url)


def test_a_failed_publish_leaves_the_batch_for_the_next_round(orgs_store):
    store = orgs_store
    add_events(store, 5)
    with pytest.raises(ConnectionError):
        outbox.publish_batch(store, OutboxEvent, FlakyProducer(fail_after=3))
    assert unpublished(store) == 5          # nothing marked: the batch is sent again, consumers dedupe
    producer = FlakyProducer(fail_after=100)
    assert outbox.publish_batch(store, OutboxEvent, producer) == 5
    assert producer.sent == [("organization.renamed", 2)] * 5   # persistent messages
    assert unpublished(store) == 0
    assert outbox.publish_batch(store, OutboxEvent, producer) == 0


def test_a_rolled_back_change_leaves_no_event(make_store):
    store = make_store("orgs")
    with pytest.raises(RuntimeError):
        with store.write() as session:
            outbox.record(session, OutboxEvent, change_event("x.y", "create", None, {"id": "a"}, "x", "1"))
            raise RuntimeError("the change failed")
    assert unpublished(store) == 0


def test_published_rows_are_pruned_after_a_while(make_store):
    from datetime import timedelta
    store = make_store("orgs")
    add_events(store, 3)
    outbox.publish_batch(store, OutboxEvent, FlakyProducer(fail_after=100))
    add_events(store, 1)                                   # not yet published: never pruned
    assert outbox.prune_published(store, OutboxEvent) == 0  # published just now: kept
    assert outbox.prune_published(store, OutboxEvent, keep=timedelta(0)) == 3
    assert unpublished(store) == 1


def test_on_postgresql_a_batch_is_two_round_trips_and_replicas_claim_apart(orgs_store):
    """BEGIN with the claim, then the mark with COMMIT, on the relay's own connection (no ping); a second
    relay claiming while the first publishes skips the rows the first holds."""
    store = orgs_store
    if store.is_sqlite:
        pytest.skip("PostgreSQL's claim")
    from sqlalchemy import event
    add_events(store, 4)
    outbox.publish_batch(store, OutboxEvent, FlakyProducer(fail_after=100))     # the relay's connection opened
    add_events(store, 4)
    sent, others = [], []

    class Meddling(FlakyProducer):
        def publish(self, body, **kwargs):
            if not others:      # a replica's relay, while this batch is claimed: finds nothing to claim
                others.append(outbox.publish_batch(store, OutboxEvent, FlakyProducer(fail_after=100), batch_size=10))
            super().publish(body, **kwargs)

    def count(conn, cursor, statement, *args):
        sent.append(statement.split()[0])
    event.listen(store.engine, "before_cursor_execute", count)
    try:
        assert outbox.publish_batch(store, OutboxEvent, Meddling(fail_after=100), batch_size=2) == 2
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert others == [2]                    # the other two
    assert sent[:1] + sent[-1:] == ["BEGIN;", "UPDATE"] and len(sent) == 4, sent   # its two, the replica's two
    assert unpublished(store) == 0
