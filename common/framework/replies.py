"""Queues of one process's own (Nameko 2.14.1): its RPC reply queue (`nameko.rpc.ReplyListener`, overridden
here for every RPC proxy: common.rpc.service_proxy) and the gateway's queue of API key revocations
(`OwnQueueConsumer`). They are classic and non-durable (upstream's reply queue is durable, with `x-expires`),
consumed through `OwnQueues`, common.framework.consume's QueueConsumer with `get_consumers` extended: after
a reconnection (any call but the first), every such queue is declared anew under a new name, and its
provider is told (`connection_renewed`).

Why, on a RabbitMQ cluster: a queue of this kind lives on the node its process was connected to. When that
node dies, a durable one stays "down" and cannot be declared again elsewhere (NOT_FOUND, home node down);
a non-durable one is deleted, but not at once: a consumer that reconnects within milliseconds declares the
same name and subscribes to the dead queue's record (seen: every reply after a kill of that node lost, all
calls timing out, for as long as the process ran). A new name is a new queue on a live node.

What was in flight is not waited for: the replies sent to the old queue may be lost, so the calls still
waiting are answered `ReplyLost` at once (common.rpc.call answers `outcome_unknown`: the request may have
been applied), and the gateway forgets the API keys it kept (a revocation sent meanwhile may be lost; the
next request by each key asks members again).
"""
import logging
import uuid

from kombu import Queue
from nameko.rpc import ReplyListener as NamekoReplyListener

from common.framework.consume import ACK_FAILURES, Consumer, QueueConsumer, unacknowledged

log = logging.getLogger(__name__)


class ReplyLost(Exception):
    """The connection the reply would have come on was lost after the request was sent."""


class OwnQueues(QueueConsumer):
    """Nameko's queue consumer, whose providers' queues are declared anew under new names after a
    reconnection."""

    def get_consumers(self, consumer_cls, channel):
        if self._consumers_ready.ready():           # connected again (the first connection made it ready)
            for provider in list(self._providers):
                provider.connection_renewed()
        return super().get_consumers(consumer_cls, channel)


class ReplyListener(NamekoReplyListener):
    """Nameko's, on a non-durable reply queue of `OwnQueues`."""

    queue_consumer = OwnQueues()

    def setup(self):
        super().setup()                 # upstream's queue, made non-durable below (before it is declared)
        self._declare_queue(self.routing_key)

    def _declare_queue(self, routing_key):
        name = f"rpc.reply-{self.container.service_name}-{routing_key}"     # upstream's name
        self.routing_key = routing_key  # the proxies' reply_to, read at each call
        self.queue = Queue(name, exchange=self.queue.exchange, routing_key=routing_key, durable=False,
                           queue_arguments=self.queue.queue_arguments)

    def handle_message(self, body, message):
        """Upstream's, whose acknowledgement of a reply on a connection just lost escaped its thread and
        killed the whole container (seen: the gateway, when a broker node was killed under load). The reply
        has arrived: its caller gets it; the acknowledgement is dropped (the reply queue is renamed on the
        new connection, nothing comes again on the old one)."""
        try:
            self.queue_consumer.ack_message(message)
        except ACK_FAILURES as error:
            unacknowledged(self, error, message)
        correlation_id = message.properties.get("correlation_id")
        client_event = self._reply_events.pop(correlation_id, None)
        if client_event is not None:
            client_event.send(body)

    def connection_renewed(self):
        waiting, self._reply_events = self._reply_events, {}
        if waiting:
            log.warning("%s: the connection for RPC replies was lost and made again; %d call(s) waiting for a "
                        "reply are answered `outcome_unknown`", self.container.service_name, len(waiting))
        for event in waiting.values():
            if not event.ready():
                event.send_exception(ReplyLost())
        self._declare_queue(str(uuid.uuid4()))


class OwnQueueConsumer(Consumer):
    """@consume on a queue of this process's own, made by `queue_factory()` (a new name each call), and made
    again after a reconnection, when `on_renewed()` is called (what arrived meanwhile may be lost). Both by
    keyword: Nameko's decorator takes a lone function argument for the decorated method."""

    queue_consumer = OwnQueues()

    def __init__(self, queue_factory, on_renewed=None, **kwargs):
        self.queue_factory, self.on_renewed = queue_factory, on_renewed
        super().__init__(queue_factory(), **kwargs)

    def connection_renewed(self):
        self.queue = self.queue_factory()
        if self.on_renewed is not None:
            self.on_renewed()


consume_own_queue = OwnQueueConsumer.decorator
