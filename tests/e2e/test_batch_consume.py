"""common.framework.batch_consume on the real broker: messages that arrive together reach one worker as a
list, at most the prefetch count (max_workers) at a time, each acknowledged once its batch's worker
returned; a batch of one whose worker raises goes back to the queue and comes again, a larger batch whose
worker raises is run again message by message, so that on a quorum queue with a delivery limit a poison
message is dead-lettered alone and the healthy ones batched with it are stored."""
import json
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


def test_messages_whose_worker_raises_are_requeued_and_come_again(broker):
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


# ---- a poison message on a quorum queue with a delivery limit ------------------------------------------
POISON = -1
DELIVERY_LIMIT = 2
POISON_RUN = f"test-poison-{uuid.uuid4().hex}"
POISON_EXCHANGE = Exchange(f"{POISON_RUN}-events", type="topic", durable=False, auto_delete=True)
DEAD_LETTERS = Exchange(f"{POISON_RUN}-dead-letters", type="fanout", durable=False, auto_delete=True)
DEAD_LETTER_QUEUE = Queue(f"{POISON_RUN}-dead-letters", exchange=DEAD_LETTERS, durable=False, auto_delete=False)
QUORUM_QUEUE = Queue(f"{POISON_RUN}-events", exchange=POISON_EXCHANGE, routing_key="#", durable=True,
                     auto_delete=False, queue_arguments={  # as common.queues declares them in quorum mode
                         "x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT,
                         "x-dead-letter-exchange": DEAD_LETTERS.name})


class PoisonedCollector:
    name = "poisoned_collector"
    stored = []                 # what a worker that returned stored
    failed = []                 # the batches whose worker raised

    @consume_batch(QUORUM_QUEUE, requeue_on_error=True)
    def take(self, bodies):
        numbers = [body["n"] for body in bodies]
        if POISON in numbers:
            self.failed.append(numbers)
            raise ValueError("simulated: an event the handler always fails on")
        self.stored.extend(numbers)


def dead_letters(broker):
    with Connection(broker.amqp_uri) as connection:
        channel = connection.default_channel
        letters = []
        while (message := channel.basic_get(DEAD_LETTER_QUEUE.name, no_ack=False)) is not None:
            letters.append(json.loads(message.body)["n"])
        return letters                  # not acknowledged: back in the queue once the channel closes


def test_a_poison_message_batched_with_healthy_ones_is_dead_lettered_alone_on_a_quorum_queue(broker):
    with Connection(broker.amqp_uri) as connection:
        DEAD_LETTER_QUEUE(connection.default_channel).declare()
        QUORUM_QUEUE(connection.default_channel).declare()
    container = ServiceContainer(PoisonedCollector, {"AMQP_URI": broker.amqp_uri, "max_workers": MAX_WORKERS})
    try:
        # Published in one go before the consumer starts: the broker hands them out in batches of up to
        # MAX_WORKERS, the poison among healthy ones.
        with Connection(broker.amqp_uri) as connection:
            producer = connection.Producer()
            for n in [0, 1, 2, POISON, 3, 4, 5, 6, 7, 8]:
                producer.publish({"n": n}, exchange=POISON_EXCHANGE, routing_key="n", serializer="json",
                                 declare=[POISON_EXCHANGE])
        container.start()
        wait_for(lambda: POISON in dead_letters(broker), timeout=20, message="the poison dead-lettered")
        time.sleep(0.5)                 # anything else dead-lettered or stored twice would show by now
        assert dead_letters(broker) == [POISON]     # the poison alone, none of the healthy ones with it
        wait_for(lambda: len(PoisonedCollector.stored) >= 9, timeout=20, message="the 9 healthy messages")
        assert sorted(PoisonedCollector.stored) == list(range(9))
        # The poison did fail in a batch with healthy messages (else this showed nothing).
        assert any(len(batch) > 1 for batch in PoisonedCollector.failed), PoisonedCollector.failed
    finally:
        container.stop()
        with Connection(broker.amqp_uri) as connection:
            channel = connection.default_channel
            channel.queue_delete(QUORUM_QUEUE.name)
            channel.queue_delete(DEAD_LETTER_QUEUE.name)
