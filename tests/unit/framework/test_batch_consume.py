"""common.framework.batch_consume in a container of Nameko's, its queue consumer a fake: a batch whose worker
raises is not requeued whole (on a quorum queue every message of it would count a delivery, and one poison
message would take the healthy ones to the dead letters); each of its messages runs again alone, the
healthy ones acknowledged once their own worker returned, the poison requeued by itself."""
from types import SimpleNamespace

import eventlet
import pytest
from nameko.containers import ServiceContainer
from nameko.testing.utils import get_extension

from common.framework import batch_consume
from common.framework.batch_consume import BatchConsumer, consume_batch

POISON = "poison"


class Collector:
    name = "collector"
    runs = []                   # the bodies of every worker's batch, in the order the workers ran
    stored = []                 # what a worker that returned stored

    @consume_batch("a-queue", requeue_on_error=True)
    def take(self, bodies):
        self.runs.append(list(bodies))
        if POISON in bodies:
            raise ValueError("simulated: an event the handler always fails on")
        self.stored.extend(bodies)


class FakeQueueConsumer:
    def __init__(self):
        self.acked, self.requeued = [], []

    def register_provider(self, provider):
        pass

    def ack_message(self, message):
        self.acked.append(message.payload)

    def requeue_message(self, message):
        self.requeued.append(message.payload)


class FakeSpan:
    def __init__(self, message, batch_size):
        self.body, self.batch_size, self.ended, self.error = message.payload, batch_size, 0, None

    def end(self, error=None):
        self.ended += 1
        self.error = error


@pytest.fixture
def consumer(monkeypatch):
    Collector.runs.clear()
    Collector.stored.clear()
    spans = []

    def consumed(entrypoint, message, context_data, batch_size=None):
        spans.append(FakeSpan(message, batch_size))
        return spans[-1]

    monkeypatch.setattr(batch_consume, "consumed", consumed)
    container = ServiceContainer(Collector, {"AMQP_URI": "memory://", "max_workers": 5})
    entrypoint = get_extension(container, BatchConsumer)
    entrypoint.queue_consumer = FakeQueueConsumer()
    entrypoint.setup()
    entrypoint.spans = spans
    yield entrypoint
    container.kill()


def deliver(entrypoint, *bodies):
    """`bodies` arriving together (in one go of the queue consumer), then every worker run."""
    for body in bodies:
        message = SimpleNamespace(payload=body, headers={}, properties={}, delivery_info={"routing_key": "r"})
        entrypoint.handle_message(body, message)
    queue = entrypoint.queue_consumer
    for _ in range(200):
        eventlet.sleep(0.01)
        if len(queue.acked) + len(queue.requeued) >= len(bodies):
            break
    eventlet.sleep(0.05)                # anything acknowledged twice would show by now


def test_a_failed_batch_runs_each_message_alone_the_healthy_acked_the_poison_requeued(consumer):
    deliver(consumer, "a", POISON, "b")
    assert Collector.runs[0] == ["a", POISON, "b"]                  # the batch, which failed
    assert sorted(map(tuple, Collector.runs[1:])) == [("a",), ("b",), (POISON,)]   # then each alone
    assert sorted(Collector.stored) == ["a", "b"]
    assert sorted(consumer.queue_consumer.acked) == ["a", "b"]      # after their own worker returned
    assert consumer.queue_consumer.requeued == [POISON]             # only the poison counts a delivery
    # A span per message per run: the batch's three ended with its error, then one per run alone.
    batch_spans, alone_spans = consumer.spans[:3], consumer.spans[3:]
    assert [(span.body, span.batch_size) for span in batch_spans] == [("a", 3), (POISON, 3), ("b", 3)]
    assert all(isinstance(span.error, ValueError) for span in batch_spans)
    assert sorted((span.body, span.batch_size, span.error is None) for span in alone_spans) == [
        ("a", 1, True), ("b", 1, True), (POISON, 1, False)]
    assert all(span.ended == 1 for span in consumer.spans)


def test_a_failed_batch_of_one_is_requeued_as_upstream_s_consumer_does(consumer):
    deliver(consumer, POISON)
    assert Collector.runs == [[POISON]]                             # not run again
    assert consumer.queue_consumer.requeued == [POISON] and consumer.queue_consumer.acked == []
    [span] = consumer.spans
    assert span.ended == 1 and isinstance(span.error, ValueError)


def test_a_batch_that_succeeds_is_acknowledged_whole_after_one_worker(consumer):
    deliver(consumer, "a", "b", "c")
    assert Collector.runs == [["a", "b", "c"]]
    assert consumer.queue_consumer.acked == ["a", "b", "c"] and consumer.queue_consumer.requeued == []


def test_a_failed_batch_without_requeue_on_error_acks_the_poison_after_its_run_alone(consumer):
    consumer.requeue_on_error = False
    deliver(consumer, "a", POISON)
    assert sorted(Collector.stored) == ["a"]
    assert sorted(consumer.queue_consumer.acked) == ["a", POISON] and consumer.queue_consumer.requeued == []
