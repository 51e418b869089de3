"""`@consume_batch(queue)`: Nameko's @consume, except that the worker gets a list of message bodies, every
message that arrived together (at most the consumer's prefetch count, Nameko's `max_workers`).

Overrides `nameko.messaging.Consumer` (Nameko 2.14.1): `setup` extended (super() plus the pending
batch), `handle_message` replaced (upstream spawns one worker per message; here the message waits for
its batch, whose worker is spawned as upstream's is, and a container being killed requeues the whole
batch), `handle_result` replaced by `handle_batch_result` (upstream's `handle_message_processed` per
message of the batch). Relies on `nameko.messaging.QueueConsumer` handing each message to
`handle_message` in its own managed thread, and on its prefetch count being `max_workers`; a failed
batch's messages are run again each from a managed thread of its own, as upstream's
`QueueConsumer.handle_message` spawns each message's worker (so a graceful stop waits for those workers
as little, or as much, as for upstream's).

Why: the audit service stores every change event of the system. One worker and one committed transaction
per event cost it more than the change itself did (a spend: 1.8 ms of CPU for its audit entry, most of
it the commit); under load events arrive in bursts, and one transaction per burst costs little more than
one per event.

Traces (common.tracing): one consumer span per message, each the child of its own event's publication
(so every event's trace holds its reaction), all started when the batch's worker is spawned and ended
when the batch is acknowledged, requeued or split (below), with the batch's size as an attribute. The
worker itself (its log lines, any RPC call or event it makes) serves the span of the batch's first
message.

Acknowledgement is per batch and only after the worker returned: every message of a batch is acked
together. A batch is dispatched on the next turn of the event loop after its first message, so it holds
what the broker sent in one go; nothing waits on a timer, and a single message is handled as soon as alone.

A failed batch (its worker raised) of more than one message is not requeued whole: each of its messages
runs again alone, a batch of one with its own worker and spans, acknowledged or (with `requeue_on_error`)
requeued by itself. Why: on a quorum queue with a delivery limit (common.queues, BROKER_QUEUE_TYPE=quorum)
every requeue counts a delivery for each message requeued, so one poison message (an event the handler
always fails on) requeued with its batch would take the healthy events batched with it to the dead-letter
queue after the limit: change events missing from the audit trail. Split, only the poison is requeued
(and in the end dead-lettered); the others are acknowledged once stored. Splitting does not requeue, so a
message still counts one delivery per failed round, as before. The handler stores by event id, so running
a message again after its batch failed (after any part of that batch was stored) stores it once. A
batch of one that fails is requeued (with `requeue_on_error`) or acked as upstream's consumer does. While
the database is away every message of a failed batch fails alone too: a round costs the batch's worker
and one worker per message, and each message is requeued once.
"""
import logging
from functools import partial

from nameko.exceptions import ContainerBeingKilled
from nameko.messaging import Consumer

from common.framework.consume import ACK_FAILURES, QueueConsumer, consumed, unacknowledged

log = logging.getLogger(__name__)


class BatchConsumer(Consumer):
    queue_consumer = QueueConsumer()        # the service's one (common.framework.consume)

    def setup(self):
        super().setup()
        self._pending = []
        self._dispatch_scheduled = False

    def handle_message(self, body, message):
        self._pending.append((body, message))
        if not self._dispatch_scheduled:
            # Runs once the queue consumer has handed over everything it read in this go.
            self._dispatch_scheduled = True
            self.container.spawn_managed_thread(self._dispatch)

    def _dispatch(self):
        self._dispatch_scheduled = False
        batch, self._pending = self._pending, []
        if batch:
            self._spawn(batch)

    def _spawn(self, batch):
        """A worker for `batch`, a list of (body, message)."""
        bodies, messages = [body for body, _ in batch], [message for _, message in batch]
        # A span per message, each in its own event's trace; the worker serves the first one's.
        contexts = [self.unpack_message_headers(message) for message in messages]
        spans = [consumed(self, message, context, len(messages))
                 for message, context in zip(messages, contexts, strict=True)]
        try:
            self.container.spawn_worker(self, (bodies,), {}, context_data=contexts[0],
                                        handle_result=partial(self.handle_batch_result, batch, spans))
        except ContainerBeingKilled as error:
            for message in messages:
                self.queue_consumer.requeue_message(message)
            for span in spans:
                span.end(error)

    def handle_batch_result(self, batch, spans, worker_ctx, result=None, exc_info=None):
        try:
            if exc_info is not None and len(batch) > 1:
                self._run_alone(batch)
            else:
                for _, message in batch:
                    self.handle_message_processed(message, result, exc_info)
        except ACK_FAILURES as error:
            unacknowledged(self, error, batch[0][1])    # the rest of the batch comes again with the broker
        finally:
            for span in spans:
                span.end(exc_info[1] if exc_info else None)
        return result, exc_info

    def _run_alone(self, batch):
        """Each message of a failed batch run again as a batch of one, acknowledged or requeued by itself
        (the module's docstring: why)."""
        log.warning("%s.%s: a batch of %d messages failed; each runs again alone",
                    self.container.service_name, self.method_name, len(batch))
        for body, message in batch:
            self.container.spawn_managed_thread(partial(self._spawn, [(body, message)]),
                                                identifier=f"{type(self).__name__}.run_alone")


consume_batch = BatchConsumer.decorator
