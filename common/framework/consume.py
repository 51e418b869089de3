"""`@consume(queue)`: Nameko's @consume with a consumer span per message (common.tracing), every service's
reactions to change events use it (and the gateway's consumer of API key revocations).

Overrides `nameko.messaging.Consumer` (Nameko 2.14.1): `unpack_message_headers` extended
(`nameko.messaging.HeaderDecoder`'s: the span started as the child of the event's publication, whose
context the outbox relay sent as the `nameko.traceparent` header, or of the command that wrote the event,
from its envelope for an event published without the header; the span's context is the worker's from
then on), `handle_result` extended (the span ends once the message is acknowledged or requeued; an
acknowledgement the broker cannot take is dropped with a warning, `unacknowledged`). Relies on upstream's
`Consumer.handle_message` calling `unpack_message_headers` once per message, just before spawning its
worker.
"""
import logging
import socket

from amqp.exceptions import AMQPError
from kombu.exceptions import OperationalError
from nameko.messaging import Consumer as NamekoConsumer
from nameko.messaging import QueueConsumer as NamekoQueueConsumer

from common import tracing

log = logging.getLogger(__name__)

# What acknowledging (or requeueing) a message raises when the broker went away meanwhile.
ACK_FAILURES = (OSError, OperationalError, AMQPError)


def unacknowledged(entrypoint, error, message=None):
    """An acknowledgement lost with the broker: the broker delivers the message again once it is back, and
    the reaction, idempotent (common.inbox), does not act twice. Why not let it raise: upstream lets the
    error escape the worker, which kills the whole service container (seen: members exited mid broker
    outage, a reaction's ack on a reset connection).

    The connection is dead: its queue consumer is told to connect again (`connection_lost`), as its own read
    was seen not to notice (QueueConsumer below)."""
    log.warning("%s.%s: a message could not be acknowledged (%s); it will be delivered again",
                entrypoint.container.service_name, getattr(entrypoint, "method_name", "rpc_replies"), error)
    connection_lost(entrypoint, message)


def connection_lost(entrypoint, message):
    """A write on the connection `message` came on failed (its acknowledgement, its reply): its socket is shut,
    and the queue consumer reading it is told to connect again (QueueConsumer.renew_connection)."""
    if not shut_down_connection_of(message):
        return                              # its connection still writes: not this one that failed
    queue_consumer = getattr(entrypoint, "queue_consumer", None) or \
        getattr(getattr(entrypoint, "rpc_consumer", None), "queue_consumer", None)
    if isinstance(queue_consumer, QueueConsumer):
        queue_consumer.renew_connection()


def shut_down_connection_of(message):
    """Shut the socket of `message`'s connection if a write on it failed (py-amqp's transport then says it is
    not connected), so its reader fails too, and say so; a connection still writable is left alone."""
    transport = getattr(getattr(getattr(message, "channel", None), "connection", None), "transport", None)
    sock = getattr(transport, "sock", None)
    if sock is None or getattr(transport, "connected", True) is not False:
        return False
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass                                # already shut: the reader has seen it
    return True


class QueueConsumer(NamekoQueueConsumer):
    """Nameko's queue consumer (one per service process, the connection its entrypoints consume on), which
    connects again as soon as a write on its connection failed elsewhere: `renew_connection()`, called by
    the thread whose acknowledgement (or reply) failed, makes its next loop end the connection as lost.

    Why: on a cluster, after a node was killed, a service's consumer was seen to go on reading its dead
    connection, its green thread waiting in recv (stacks by SIGUSR2) with no "connection lost" line, while
    its acks failed on that same connection; its queues had no consumer for 20 s to over a minute (the RPC
    routes of the service answered "not running"). Shutting the socket for reading did not wake it. The
    loop comes back to `on_iteration` at least once a second (kombu's drain_events time-out)."""

    _renew = False

    def renew_connection(self):
        self._renew = True

    def on_iteration(self):
        if self._renew:
            self._renew = False
            raise ConnectionResetError("a write on the consumer's connection failed; connecting again")
        super().on_iteration()


class Consumer(NamekoConsumer):
    """Nameko's consumer, with a consumer span per message, on `QueueConsumer` above."""

    queue_consumer = QueueConsumer()

    _spans = None                   # message -> its span, until it is acknowledged or requeued

    def unpack_message_headers(self, message):
        context_data = super().unpack_message_headers(message)
        if self._spans is None:
            self._spans = {}
        self._spans[message] = consumed(self, message, context_data)
        return context_data

    def handle_result(self, message, worker_ctx, result=None, exc_info=None):
        try:
            return super().handle_result(message, worker_ctx, result, exc_info)
        except ACK_FAILURES as error:
            unacknowledged(self, error, message)
            return result, exc_info
        finally:
            span = self._spans.pop(message, None) if self._spans else None
            if span is not None:
                span.end(exc_info[1] if exc_info else None)


def consumed(entrypoint, message, context_data, batch_size=None):
    """The span of `entrypoint`'s worker consuming `message` (an event), child of the context the message
    carries, written into `context_data`."""
    service = entrypoint.container.service_name
    envelope = None
    if tracing.TRACEPARENT not in context_data:         # published without the header: the envelope's
        payload = getattr(message, "payload", None)     # (decoded once already, kombu caches it)
        envelope = payload if isinstance(payload, dict) else None
    span = tracing.received(service, f"{service}.{entrypoint.method_name}", tracing.CONSUMER, context_data,
                            fallback=envelope)
    if span.recording:
        delivery = message.delivery_info or {}
        span.set_attribute("messaging.system", "rabbitmq")
        span.set_attribute("messaging.operation.type", "process")
        span.set_attribute("messaging.destination.name", delivery.get("exchange"))
        span.set_attribute("messaging.rabbitmq.destination.routing_key", delivery.get("routing_key"))
        span.set_attribute("messaging.message.id", message.properties.get("message_id"))
        span.set_attribute("messaging.consumer.group.name", entrypoint.queue.name)
        if batch_size is not None:
            span.set_attribute("messaging.batch.message_count", batch_size)
    return span


consume = Consumer.decorator
