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


def test_a_failed_publish_leaves_the_batch_for_the_next_round(make_store):
    store = make_store("orgs")
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
