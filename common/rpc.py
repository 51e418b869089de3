"""RPC helpers shared by services and the gateway: expected errors, bounded calls that fail fast. The RPC
entrypoint itself (Nameko's, overridden) is common.framework.rpc.Rpc."""
import threading
import time
from contextlib import contextmanager

import eventlet
import eventlet.semaphore
from amqp.exceptions import AMQPError
from amqp.exceptions import NotFound as QueueNotFound
from kombu import Connection
from kombu.exceptions import OperationalError
from nameko.exceptions import UnknownService
from nameko.rpc import RpcProxy

from common import deadlines, metrics, tracing
from common.config import settings
from common.errors import EXPECTED_ERRORS, ServiceUnavailable
from common.framework.replies import ReplyListener, ReplyLost
from common.framework.rpc import Rpc


class _RpcProxy(RpcProxy):
    """Nameko's RpcProxy with our reply listener (common.framework.replies: a non-durable reply queue, and the
    calls waiting when its connection was lost told so at once)."""
    rpc_reply_listener = ReplyListener()


def service_proxy(service_name):
    """A Nameko RpcProxy to `service_name` whose requests do not wait for the broker's publisher confirm
    (a round trip per request). Nameko needs the confirm only to raise UnknownService for a service that
    never ran; `call` below asks the broker whether the service has a consumer instead, and fails fast
    the same way when a request is lost with the broker (replies go without confirms too:
    common.framework.rpc.RpcConsumer). Always called through `call`.

    Except on a cluster (AMQP_URI naming several nodes): there a request waits for its confirm. Why: with
    RabbitMQ 3.10.8, after the node leading a service's quorum queue was killed, a channel's unconfirmed
    publishes to that queue could vanish for as long as the channel lived (seen in 1 run of 3 of the
    node-kill test: every call to that service timed out, its consumer active and its queue empty); with
    confirms, requests succeed again within about a second of the kill."""
    return _RpcProxy(service_name, use_confirms=settings().broker.hosts > 1)


def rpc(fn):
    """@rpc with our errors declared expected: they are answers, not crashes, so Nameko does not log
    them as errors; the caller gets the same exception class back (see common.errors). Replies that
    cannot be sent do not kill the service (common.framework.rpc.Rpc).

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

# How long a call waits for room in its service's bulkhead before it is refused (the usual fail-fast time).
BULKHEAD_WAIT_SECONDS = 3.0


class Bulkheads:
    """At most `limit` calls in flight per target service in this process (RPC_BULKHEAD). Why: the gateway's
    workers are shared by every route, and a hung service would hold each request sent to it for the whole
    time-out; without a bound, 10 such requests took every worker and `/health`, `/openapi.json` and
    credits' routes waited behind them. With one, a call finding its service's share taken waits up to
    BULKHEAD_WAIT_SECONDS for room, then answers 503 without being sent (not applied); requests to other
    services never wait for it (the gateway has workers for several services' shares: GATEWAY_MAX_WORKERS)."""

    def __init__(self, limit=None):
        self._limit = limit
        self._gates = {}

    @property
    def limit(self):
        if self._limit is None:
            self._limit = settings().rpc_bulkhead
        return self._limit

    def _gate(self, service):
        gate = self._gates.get(service)
        if gate is None:
            gate = self._gates.setdefault(service, eventlet.semaphore.Semaphore(self.limit))
        return gate

    def full(self, service):
        """Whether every place of `service`'s share is taken now (its calls are waiting on it)."""
        return self._gate(service).balance <= 0

    @contextmanager
    def entered(self, service, wait=None):
        gate = self._gate(service)
        if not gate.acquire(timeout=BULKHEAD_WAIT_SECONDS if wait is None else wait):
            raise ServiceUnavailable(f"The {service} service is not keeping up: {self.limit} requests to it are "
                                     "still waiting for its answer. Nothing was done; try again in a moment.",
                                     code="service_unavailable")
        try:
            yield
        finally:
            gate.release()


bulkheads = Bulkheads()


def outcome_unknown(service):
    """The request was sent, and may have been taken and applied, but its answer cannot come (the broker
    went away while the caller waited): not the plain 503, which means "not applied"."""
    return ServiceUnavailable(f"The request reached the message broker, which then went away: the {service} "
                              "service may or may not have applied it. Read the resource back before retrying "
                              "(a request with an Idempotency-Key can be sent again with the same key).",
                              code="outcome_unknown")


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


@metrics.timed_calls        # counted by service, method and outcome, and timed (common.metrics)
@tracing.rpc_client         # a client span, carried in the request's headers (common.tracing)
def call(method, *args, timeout=RPC_TIMEOUT_SECONDS, **kwargs):
    """Call an RPC method proxy with a time limit, failing fast when nobody serves it.

    Nameko's in-service RpcProxy waits forever for a reply; a lost reply would hang the caller. And a
    request to a service with no running process waits in its durable queue: every second of the wait
    the broker is asked (cached, see _ConsumerWatch) whether the service still has a consumer.

    The request carries its deadline (common.deadlines): the time-out from now, or the deadline of the
    request this worker serves when that comes first. The service drops it, or refuses to commit it, past
    that deadline, so a call that timed out was not applied: 503 `service_unavailable`. A call whose
    broker went away after the request was sent may have been applied: 503 `outcome_unknown`."""
    data = getattr(getattr(method, "worker_ctx", None), "data", None)
    deadline = deadlines.for_call(data, timeout)
    service = method.service_name
    recorded = getattr(_traced, "calls", None)
    if recorded is not None:
        recorded.append(f"{service}.{getattr(method, 'method_name', '?')}")
    # Test doubles of a proxy have no broker to ask.
    amqp_uri = getattr(method, "amqp_uri", None)
    watched = isinstance(amqp_uri, str)
    if watched and not _serves(consumers := consumer_watch.consumers(amqp_uri, service)):
        raise not_running(service, consumers)
    with bulkheads.entered(service):
        return _send_and_wait(method, args, kwargs, service, data, deadline, timeout, amqp_uri if watched else None)


def _send_and_wait(method, args, kwargs, service, data, deadline, timeout, amqp_uri):
    watched = amqp_uri is not None
    try:
        with tracing.outgoing(method), _carrying(method, data, deadline):
            reply = method.call_async(*args, **kwargs)
    except UnknownService:
        raise not_running(service)
    except (OSError, AMQPError, OperationalError):     # the broker went away since it was asked
        raise not_running(service, BROKER_UNREACHABLE)
    give_up_at = time.monotonic() + max(0.0, deadline - deadlines.now())
    while True:
        remaining = give_up_at - time.monotonic()
        if remaining <= 0:
            raise ServiceUnavailable(f"The {service} service did not answer within {timeout:g} s.",
                                     code="service_unavailable")
        slice_timeout = eventlet.Timeout(min(CONSUMER_CHECK_SECONDS, remaining))
        try:
            return reply.result()
        except ReplyLost:
            # The connection the reply would come on was lost (its broker node died) after the request was
            # sent: it may have been applied.
            raise outcome_unknown(service) from None
        except eventlet.Timeout as exc:
            if exc is not slice_timeout:
                raise
            if watched and not _serves(consumer_watch.consumers(amqp_uri, service)):
                # Sent, then nobody left to answer: the broker gone may have delivered it first, a
                # process that stopped may have taken it, and one started again before the deadline
                # would run it. Not "not applied", then.
                raise outcome_unknown(service)
        finally:
            slice_timeout.cancel()


@contextmanager
def _carrying(method, data, deadline):
    """Around `method.call_async(...)`: the request carries `deadline` as a header (the worker's context data
    while Nameko makes the headers, before it first yields; then the worker's own again) and as the
    message's expiration (the publisher is the method proxy's own, made for this call)."""
    publisher = getattr(method, "publisher", None)
    if publisher is not None:
        publisher.expiration = max(0.001, deadline - deadlines.now())
    if not isinstance(data, dict):
        yield
        return
    own = data.get(deadlines.DEADLINE)
    data[deadlines.DEADLINE] = deadlines.header_value(deadline)
    try:
        yield
    finally:
        if own is None:
            data.pop(deadlines.DEADLINE, None)
        else:
            data[deadlines.DEADLINE] = own
