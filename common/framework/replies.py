"""Overrides of Nameko's RPC reply listener (Nameko 2.14.1, `nameko.rpc.ReplyListener` and its
`nameko.messaging.QueueConsumer`), used by every RPC proxy (common.rpc.service_proxy):

- `ReplyListener.setup` extends upstream's: the reply queue is declared non-durable (upstream's is a durable
  classic queue with `x-expires`). Why: a durable classic queue lives on the one node that declared it;
  when that node of a cluster dies, the queue stays "down" and declaring it again from another node is
  refused (NOT_FOUND, home node down), so the process could not consume replies until the node came back.
  A non-durable one is gone with its node and is declared again on the node the consumer moves to.
  Kept with `x-expires` (not auto-delete), so it survives a short connection loss of a live node.
- `ReplyQueueConsumer.on_consume_ready` extends upstream's: after a reconnection (any call but the first),
  every call still waiting for its reply is told `ReplyLost` at once. Why: the replies sent while the
  connection was away may have been lost with it (the queue gone with its node), and the request may have
  been applied; the caller (common.rpc.call) answers `outcome_unknown` then, instead of waiting for its
  whole time-out and answering the 503 that means "not applied".
"""
import logging

from kombu import Queue
from nameko.messaging import QueueConsumer
from nameko.rpc import ReplyListener as NamekoReplyListener

log = logging.getLogger(__name__)


class ReplyLost(Exception):
    """The connection the reply would have come on was lost after the request was sent."""


class ReplyQueueConsumer(QueueConsumer):

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        if self._consumers_ready.ready():            # connected again: what was waiting may never come
            for provider in list(self._providers):
                if isinstance(provider, ReplyListener):
                    provider.replies_lost()
        super().on_consume_ready(connection, channel, consumers, **kwargs)


class ReplyListener(NamekoReplyListener):

    queue_consumer = ReplyQueueConsumer()

    def setup(self):
        super().setup()
        # Upstream's queue, non-durable (see the module's docstring); set before the consumer declares it.
        queue = self.queue
        self.queue = Queue(queue.name, exchange=queue.exchange, routing_key=queue.routing_key, durable=False,
                           queue_arguments=queue.queue_arguments)

    def replies_lost(self):
        waiting, self._reply_events = self._reply_events, {}
        if waiting:
            log.warning("%s: the connection for RPC replies was lost and made again; %d call(s) waiting for a "
                        "reply are answered `outcome_unknown`", self.container.service_name, len(waiting))
        for event in waiting.values():
            if not event.ready():
                event.send_exception(ReplyLost())
