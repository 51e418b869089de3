"""`@consume_batch(queue)`: Nameko's @consume, except that the worker gets a list of message bodies, every
message that arrived together (at most the consumer's prefetch count, Nameko's `max_workers`).

Overrides `nameko.messaging.Consumer` (Nameko 2.14.1): `setup` extended (super() plus the pending
batch), `handle_message` replaced (upstream spawns one worker per message; here the message waits for
its batch, whose worker is spawned as upstream's is, and a container being killed requeues the whole
batch), `handle_result` replaced by `handle_batch_result` (upstream's `handle_message_processed` per
message of the batch). Relies on `nameko.messaging.QueueConsumer` handing each message to
`handle_message` in its own managed thread, and on its prefetch count being `max_workers`.

Why: the audit service stores every change event of the system. One worker and one committed transaction
per event cost it more than the change itself did (a spend: 1.8 ms of CPU for its audit entry, most of
it the commit); under load events arrive in bursts, and one transaction per burst costs little more than
one per event.

Traces (common.tracing): one consumer span per message, each the child of its own event's publication
(so every event's trace holds its reaction), all started when the batch's worker is spawned and ended
when the batch is acknowledged or requeued, with the batch's size as an attribute. The worker itself
(its log lines, any RPC call or event it makes) serves the span of the batch's first message.

Acknowledgement is per batch and only after the worker returned: every message of a batch is acked
together, or, when the worker raised and `requeue_on_error` is set, requeued together (the handler
stores by event id, so the ones that were stored before are found and skipped on redelivery). A batch is
dispatched on the next turn of the event loop after its first message, so it holds what the broker
sent in one go; nothing waits on a timer, and a single message is handled as soon as alone.
"""
from functools import partial

from nameko.exceptions import ContainerBeingKilled
from nameko.messaging import Consumer

from common.framework.consume import ACK_FAILURES, consumed, unacknowledged


class BatchConsumer(Consumer):

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
        if not batch:
            return
        bodies, messages = [body for body, _ in batch], [message for _, message in batch]
        # A span per message, each in its own event's trace; the worker serves the first one's.
        contexts = [self.unpack_message_headers(message) for message in messages]
        spans = [consumed(self, message, context, len(messages))
                 for message, context in zip(messages, contexts, strict=True)]
        try:
            self.container.spawn_worker(self, (bodies,), {}, context_data=contexts[0],
                                        handle_result=partial(self.handle_batch_result, messages, spans))
        except ContainerBeingKilled:
            for message in messages:
                self.queue_consumer.requeue_message(message)

    def handle_batch_result(self, messages, spans, worker_ctx, result=None, exc_info=None):
        try:
            for message in messages:
                self.handle_message_processed(message, result, exc_info)
        except ACK_FAILURES as error:
            unacknowledged(self, error)         # the rest of the batch comes again with the broker
        finally:
            for span in spans:
                span.end(exc_info[1] if exc_info else None)
        return result, exc_info


consume_batch = BatchConsumer.decorator
