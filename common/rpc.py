"""RPC helpers shared by services and the gateway: expected errors, bounded calls that fail fast."""
import inspect
import logging
import threading
import time

import eventlet
from amqp.exceptions import AMQPError
from amqp.exceptions import NotFound as QueueNotFound
from kombu import Connection
from kombu.exceptions import OperationalError
from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_SERIALIZER,
    LOGIN_METHOD_CONFIG_KEY,
    SERIALIZER_CONFIG_KEY,
)
from nameko.exceptions import IncorrectSignature, UnknownService
from nameko.rpc import Responder, RpcProxy, get_rpc_exchange
from nameko.rpc import Rpc as NamekoRpc
from nameko.rpc import RpcConsumer as NamekoRpcConsumer

from common.db import RPC_REQUEST_ID
from common.errors import EXPECTED_ERRORS, Forbidden, ServiceUnavailable

log = logging.getLogger(__name__)


class _UnconfirmedPublisher(Publisher):
    use_confirms = False


class _Responder(Responder):
    publisher_cls = _UnconfirmedPublisher


class RpcConsumer(NamekoRpcConsumer):
    """Nameko's, except that a reply is published without waiting for the broker's publisher confirm.
    A confirm protects nothing here: the change was committed before the reply, and a reply the broker
    loses leaves the caller exactly where a failed publish would (it times out, or fails fast when the
    broker is gone: `call` below). Waiting for it cost every request a round trip to the broker."""

    def handle_result(self, message, result, exc_info):
        config = self.container.config
        responder = _Responder(config[AMQP_URI_CONFIG_KEY], get_rpc_exchange(config),
                               config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER), message,
                               ssl=config.get(AMQP_SSL_CONFIG_KEY), login_method=config.get(LOGIN_METHOD_CONFIG_KEY))
        result, exc_info = responder.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info


class SignatureOnce:
    """For Nameko entrypoints: the method's signature is checked against one built once. Nameko's own
    check_signature rebuilds it for every message (inspect.getcallargs): 6 % of credits' CPU under load."""

    def check_signature(self, args, kwargs):
        signature = getattr(self, "_signature", None)
        if signature is None:
            signature = self._signature = inspect.signature(getattr(self.container.service_cls, self.method_name))
        try:
            signature.bind(None, *args, **kwargs)       # None: the unbound method's `self`
        except TypeError as exc:
            raise IncorrectSignature(str(exc))


class Rpc(SignatureOnce, NamekoRpc):
    """Nameko's RPC entrypoint, except that a reply that cannot be sent (the broker unreachable) is
    dropped with a warning instead of raising: in Nameko the error escapes the worker and kills the
    whole service container, which then stays dead after the broker is back. The caller times out
    (or fails fast); a command it retries is idempotent (keys, inbox), as a redelivery already needs.
    Replies are sent without publisher confirms (RpcConsumer above). A request delivered again after
    its command committed cannot write a second time (common.handled_requests)."""

    rpc_consumer = RpcConsumer()

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
        return context_data

    def handle_result(self, message, worker_ctx, result, exc_info):
        try:
            return super().handle_result(message, worker_ctx, result, exc_info)
        except (OSError, ConnectionError, OperationalError, AMQPError) as error:
            log.warning("the reply of %s.%s could not be sent and was dropped (%s); the caller will time out",
                        self.container.service_name, self.method_name, error)
            return result, exc_info


def service_proxy(service_name):
    """A Nameko RpcProxy to `service_name` whose requests do not wait for the broker's publisher confirm
    (a round trip per request). Nameko needs the confirm only to raise UnknownService for a service that
    never ran; `call` below asks the broker whether the service has a consumer instead, and fails fast
    the same way when a request is lost with the broker. Always called through `call`."""
    return RpcProxy(service_name, use_confirms=False)


def rpc(fn):
    """@rpc with our errors declared expected: they are answers, not crashes, so Nameko does not log
    them as errors; the caller gets the same exception class back (see common.errors). Replies that
    cannot be sent do not kill the service (Rpc above).

    (Not `partial(Rpc.decorator, expected_exceptions=...)`: used bare, Nameko's decorator takes the
    "no arguments" path and silently drops keyword arguments.)"""
    return Rpc.decorator(expected_exceptions=EXPECTED_ERRORS)(fn)


RPC_TIMEOUT_SECONDS = 10
# How often a waiting call asks whether anyone still consumes the service's queue, and how old the
# broker's answer may be: a call to a stopped service fails within about 3 s instead of the time-out.
CONSUMER_CHECK_SECONDS = 1.0


class _ConsumerWatch:
    """How many consumers a service's RPC queue has, asked of the broker at most once a second per
    service and process (RPC queues are durable, so a request to a stopped service would otherwise
    wait in its queue until the caller's time-out)."""

    def __init__(self):
        self._answers = {}          # (amqp_uri, service) -> (asked at, consumer count or None)
        self._lock = threading.Lock()

    def consumers(self, amqp_uri, service):
        key = (amqp_uri, service)
        with self._lock:
            asked_at, count = self._answers.get(key, (-CONSUMER_CHECK_SECONDS, None))
            if time.monotonic() - asked_at < CONSUMER_CHECK_SECONDS:
                return count
            # Claimed before asking: the green threads arriving meanwhile use the previous answer.
            self._answers[key] = (time.monotonic(), count)
        count = self._ask(amqp_uri, service)
        with self._lock:
            self._answers[key] = (time.monotonic(), count)
        return count

    @staticmethod
    def _ask(amqp_uri, service):
        try:
            with eventlet.Timeout(2), Connection(amqp_uri, connect_timeout=2) as connection:
                _, _, count = connection.default_channel.queue_declare(f"rpc-{service}", passive=True)
                return count
        except QueueNotFound:
            return 0                # the service never ran on this broker
        except (OSError, AMQPError, OperationalError, eventlet.Timeout):
            return BROKER_UNREACHABLE


BROKER_UNREACHABLE = -1
consumer_watch = _ConsumerWatch()


def not_running(service, consumers=0):
    if consumers == BROKER_UNREACHABLE:
        return ServiceUnavailable("The message broker is not reachable; try again in a moment.",
                                  code="service_unavailable")
    return ServiceUnavailable(f"The {service} service is not running.", code="service_unavailable")


def _serves(consumers):
    return consumers is None or consumers > 0


# The RPC calls the current green thread made since trace_calls(): the gateway writes them on each
# request's access line, so that "a request is the gateway and one service" can be checked (and seen).
_traced = threading.local()


def trace_calls():
    """Start recording the RPC calls this green thread makes; returns the list they are appended to."""
    _traced.calls = []
    return _traced.calls


def call(method, *args, timeout=RPC_TIMEOUT_SECONDS, **kwargs):
    """Call an RPC method proxy with a time limit, failing fast when nobody serves it.

    Nameko's in-service RpcProxy waits forever for a reply; a lost reply would hang the caller. And a
    request to a service with no running process waits in its durable queue: every second of the wait
    the broker is asked (cached, see _ConsumerWatch) whether the service still has a consumer."""
    service = method.service_name
    recorded = getattr(_traced, "calls", None)
    if recorded is not None:
        recorded.append(f"{service}.{getattr(method, 'method_name', '?')}")
    # Test doubles of a proxy have no broker to ask.
    amqp_uri = getattr(method, "amqp_uri", None)
    watched = isinstance(amqp_uri, str)
    if watched and not _serves(consumers := consumer_watch.consumers(amqp_uri, service)):
        raise not_running(service, consumers)
    try:
        reply = method.call_async(*args, **kwargs)
    except UnknownService:
        raise not_running(service)
    except (OSError, AMQPError, OperationalError):     # the broker went away since it was asked
        raise not_running(service, BROKER_UNREACHABLE)
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ServiceUnavailable(f"The {service} service did not answer within {timeout:g} s.",
                                     code="service_unavailable")
        slice_timeout = eventlet.Timeout(min(CONSUMER_CHECK_SECONDS, remaining))
        try:
            return reply.result()
        except eventlet.Timeout as exc:
            if exc is not slice_timeout:
                raise
            if watched and not _serves(consumers := consumer_watch.consumers(amqp_uri, service)):
                raise not_running(service, consumers)
        finally:
            slice_timeout.cancel()
