"""common.framework.batch_consume on the real broker: messages that arrive together reach one worker as a
list, at most the prefetch count (max_workers) at a time, each acknowledged once its batch's worker
returned; a batch whose worker raises goes back to the queue whole and comes again."""
import time
import uuid

from kombu import Connection, Exchange, Queue
from nameko.containers import ServiceContainer

from common.framework.batch_consume import consume_batch
from tests.e2e.helpers import wait_for

EXCHANGE = Exchange("test-batches", type="topic", durable=False)
QUEUE = Queue(f"test-batches-{uuid.uuid4().hex}", exchange=EXCHANGE, routing_key="#", durable=False,
              auto_delete=True)
MAX_WORKERS = 5


class BatchCollector:
    name = "batch_collector"
    batches = []                # every batch a worker returned from
    failures_left = [0]         # this many batches fail (their worker raises) first

    @consume_batch(QUEUE, requeue_on_error=True)
    def take(self, bodies):
        if self.failures_left[0] > 0:
            self.failures_left[0] -= 1
            raise RuntimeError("simulated: the database went away")
        self.batches.append([body["n"] for body in bodies])


def publish(broker, numbers):
    with Connection(broker.amqp_uri) as connection:
        producer = connection.Producer()
        for n in numbers:
            producer.publish({"n": n}, exchange=EXCHANGE, routing_key="n", serializer="json",
                             declare=[EXCHANGE])


def run_collector(broker):
    BatchCollector.batches.clear()
    container = ServiceContainer(BatchCollector, {"AMQP_URI": broker.amqp_uri, "max_workers": MAX_WORKERS})
    container.start()
    time.sleep(0.5)                 # consuming
    return container


def received(count):
    return lambda: (lambda seen: seen if len(seen) >= count else None)(
        [n for batch in BatchCollector.batches for n in batch])


def test_messages_that_arrive_together_are_one_batch_each_acknowledged_once(broker):
    container = run_collector(broker)
    try:
        publish(broker, range(60))
        wait_for(received(60), timeout=20, message="60 messages")
        time.sleep(0.5)             # anything handed out twice would show by now
        assert sorted(n for batch in BatchCollector.batches for n in batch) == list(range(60))
        assert max(len(batch) for batch in BatchCollector.batches) > 1, BatchCollector.batches
        assert max(len(batch) for batch in BatchCollector.batches) <= MAX_WORKERS   # the prefetch count
    finally:
        container.stop()


def test_a_batch_whose_worker_raises_is_requeued_whole_and_comes_again(broker):
    BatchCollector.failures_left[0] = 2
    container = run_collector(broker)
    try:
        publish(broker, range(20))
        wait_for(received(20), timeout=20, message="20 messages after two failed batches")
        time.sleep(0.5)
        assert sorted(n for batch in BatchCollector.batches for n in batch) == list(range(20))
        assert BatchCollector.failures_left[0] == 0
    finally:
        container.stop()
