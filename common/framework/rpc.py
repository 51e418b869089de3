"""Overrides of Nameko's RPC entrypoint (Nameko 2.14.1, `nameko.rpc`):

- `RpcConsumer.setup` replaces `nameko.rpc.RpcConsumer.setup`: the service's queue (the same name
  `rpc-<service>`, exchange and routing key) is declared as common.queues says (classic, or quorum with a
  delivery limit and dead letters), not upstream's plain durable queue. Before the container starts it
  also declares the dead letters' exchange and queue, and checks that the container's durable queues (this
  one and its event queues) exist as the settings declare them: one of the other type stops the start with
  a message naming the conversion command (common.queues.check_declared), instead of a PRECONDITION_FAILED
  traceback from the consumer.
- `RpcConsumer.handle_result` is a copy of `nameko.rpc.RpcConsumer.handle_result` whose Responder
  (`nameko.rpc.Responder`, its `publisher_cls`) publishes the reply without waiting for the broker's
  publisher confirm (`nameko.amqp.publish.Publisher.use_confirms`). Why: a confirm protects nothing
  here (the change was committed before the reply; a reply the broker loses leaves the caller where a
  failed publish would: it times out, or fails fast, common.rpc.call), and waiting for it cost every
  request a round trip to the broker.
- `Rpc.handle_result` wraps `nameko.rpc.Rpc.handle_result`: a reply that cannot be sent (the broker
  unreachable) is dropped with a warning. Why: upstream lets the error escape the worker, which kills
  the whole service container, and it stays dead after the broker is back.
- `Rpc.unpack_message_headers` extends `nameko.messaging.HeaderDecoder.unpack_message_headers`: the
  worker's context data also holds the request's correlation id (common.handled_requests: a command
  delivered again after it committed is not run twice), and the trace context of the call's server span
  (common.tracing), started there as the child of the caller's `nameko.traceparent` and ended by
  `Rpc.handle_result` once the reply is sent.
- `Rpc.unpack_message_headers` and `Rpc.handle_result` also tell common.metrics of the request's arrival
  and end (RPC requests by method and outcome, and their duration).
- `Rpc.check_signature` extends `nameko.extensions.Entrypoint.check_signature` (through
  common.framework.signature.SignatureOnce): deny by default, a method that declares no access
  (common.commands) is refused before any worker runs it. Upstream's `Rpc.handle_message` calls it
  before spawning the worker.
- `Rpc.handle_message` wraps `nameko.rpc.Rpc.handle_message`: a request past its caller's deadline
  (common.deadlines, the `nameko.deadline` header) is acknowledged and dropped, never run late.
"""
import logging

from amqp.exceptions import AMQPError
from kombu import Queue
from kombu.exceptions import OperationalError
from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_SERIALIZER,
    LOGIN_METHOD_CONFIG_KEY,
    SERIALIZER_CONFIG_KEY,
)
from nameko.rpc import RPC_QUEUE_TEMPLATE, Responder, get_rpc_exchange
from nameko.rpc import Rpc as NamekoRpc
from nameko.rpc import RpcConsumer as NamekoRpcConsumer

from common import deadlines, metrics, queues, tracing
from common.db import RPC_REQUEST_ID
from common.errors import Forbidden
from common.framework.consume import ACK_FAILURES, QueueConsumer, connection_lost, unacknowledged
from common.framework.signature import SignatureOnce

log = logging.getLogger(__name__)


class _UnconfirmedPublisher(Publisher):
    use_confirms = False


class _Responder(Responder):
    publisher_cls = _UnconfirmedPublisher


class RpcConsumer(NamekoRpcConsumer):
    """Nameko's, except that its queue is declared as common.queues says (checked before the start), and a
    reply is published without waiting for the broker's publisher confirm. On common.framework.consume's
    QueueConsumer, as every consumer of the service."""

    queue_consumer = QueueConsumer()

    def setup(self):
        # Upstream's, with common.queues.durable_queue for its plain durable Queue, then the check.
        if self.queue is None:
            config, service_name = self.container.config, self.container.service_name
            self.queue = queues.durable_queue(RPC_QUEUE_TEMPLATE.format(service_name),
                                              exchange=get_rpc_exchange(config), routing_key=f"{service_name}.*")
            self.queue_consumer.register_provider(self)
            self._registered = True
            durable = [entrypoint.queue for entrypoint in self.container.entrypoints
                       if isinstance(getattr(entrypoint, "queue", None), Queue) and entrypoint.queue.durable]
            queues.check_declared(config[AMQP_URI_CONFIG_KEY], [self.queue, *durable])

    def handle_result(self, message, result, exc_info):
        # Upstream's, with _Responder for nameko.rpc.Responder.
        config = self.container.config
        responder = _Responder(config[AMQP_URI_CONFIG_KEY], get_rpc_exchange(config),
                               config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER), message,
                               ssl=config.get(AMQP_SSL_CONFIG_KEY), login_method=config.get(LOGIN_METHOD_CONFIG_KEY))
        result, exc_info = responder.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info


class Rpc(SignatureOnce, NamekoRpc):
    """Nameko's RPC entrypoint, except that a reply that cannot be sent is dropped with a warning instead
    of killing the service container; the caller times out (or fails fast); a command it retries is
    idempotent (keys, inbox), as a redelivery already needs. Replies are sent without publisher confirms
    (RpcConsumer above). A request delivered again after its command committed cannot write a second
    time (common.handled_requests). A method that declares no access is refused (deny by default)."""

    rpc_consumer = RpcConsumer()
    _spans = None                   # message -> the server span of its call, until its reply is sent

    def handle_message(self, body, message):
        # A request past its deadline (common.deadlines) is dropped before any worker runs it: its caller
        # has answered its client already (a 503 that means "not applied"). One a frozen process had taken
        # before it froze arrives here late; one that waited in the queue the broker expires itself.
        headers = message.headers or {}
        deadline = deadlines.of_context({deadlines.DEADLINE: headers.get(f"nameko.{deadlines.DEADLINE}")})
        if deadlines.passed(deadline):
            log.warning("%s.%s: a request %.1f s past its caller's deadline was dropped unexecuted",
                        self.container.service_name, self.method_name, deadlines.seconds_past(deadline))
            try:
                self.rpc_consumer.queue_consumer.ack_message(message)
            except ACK_FAILURES as error:      # the broker delivers it again, to be dropped again
                unacknowledged(self, error, message)
            return
        super().handle_message(body, message)

    def check_signature(self, args, kwargs):
        # Deny by default: a method exposed without a declaration of who may call it (common.commands)
        # answers every request with a refusal, before any worker runs it.
        if getattr(getattr(self.container.service_cls, self.method_name), "declaration", None) is None:
            raise Forbidden(f"{self.container.service_name}.{self.method_name} declares no access; "
                            "nobody may call it.", code="undeclared_method")
        super().check_signature(args, kwargs)

    def unpack_message_headers(self, message):
        # The worker learns its request's id (the caller's correlation id, unique per call), by which a
        # command is recorded as handled (common.handled_requests): a redelivery cannot run it twice.
        context_data = super().unpack_message_headers(message)
        context_data[RPC_REQUEST_ID] = message.properties.get("correlation_id")
        # The call's server span, child of the caller's (its context is the worker's from here on).
        service = self.container.service_name
        if self._spans is None:
            self._spans = {}
        self._spans[message] = span = tracing.received(service, f"{service}.{self.method_name}", tracing.SERVER,
                                                       context_data)
        if span.recording:
            span.set_attribute("rpc.system", "nameko")
            span.set_attribute("rpc.service", service)
            span.set_attribute("rpc.method", self.method_name)
        metrics.rpc_received(message)       # called just before the worker is spawned: its arrival
        return context_data

    def handle_result(self, message, worker_ctx, result, exc_info):
        metrics.rpc_served(self.container.service_name, self.method_name, message, exc_info)
        try:
            return super().handle_result(message, worker_ctx, result, exc_info)
        except (OSError, ConnectionError, OperationalError, AMQPError) as error:
            log.warning("the reply of %s.%s could not be sent and was dropped (%s); the caller will time out",
                        self.container.service_name, self.method_name, error)
            connection_lost(self, message)      # if it was the request's ack that failed: its reader reconnects
            return result, exc_info
        finally:
            span = self._spans.pop(message, None) if self._spans else None
            if span is not None:
                span.end(exc_info[1] if exc_info else None)    # a refusal is an answer (tracing.failure)
