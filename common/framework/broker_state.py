"""Whether this process's broker connection is up, as Nameko's queue consumer sees it (for the
`orgplatform_broker_up` metric, common.metrics).

Wraps two methods of `nameko.messaging.QueueConsumer` (Nameko 2.14.1), which kombu's `ConsumerMixin` calls:
- `on_connection_error(exc, interval)`, for every failed attempt to (re)connect: the broker is away. A lost
  connection is followed at once by such an attempt (`kombu.mixins.ConsumerMixin.run` consumes again, and
  `establish_connection` retries through `ensure_connection` with this errback), so a loss is seen within
  the first retry;
- `on_consume_ready(connection, channel, consumers)`, after every (re)connection once its consumers are
  declared: connected.

Patched on the class rather than subclassed: every entrypoint of a container (Nameko's @consume, the RPC
consumer, @consume_batch) shares the one QueueConsumer of Nameko's class that its `queue_consumer`
attribute names, so a subclass would have to replace that attribute in each of them. The wrappers call
upstream's methods unchanged (its broker-outage line stays what common.framework.log_filters matches) and
keep them as `__wrapped__`, so their fingerprints (tests/unit/framework/test_upstream.py) are upstream's.
`watch` patches once per process, at start (common.metrics.start_process).
"""
import functools

from nameko.messaging import QueueConsumer

_listeners = []


def watch(listener):
    """Call `listener(True)` whenever a queue consumer of this process (re)connected, `listener(False)`
    whenever one failed to connect."""
    if not _listeners:
        _patch()
    _listeners.append(listener)


def _tell(up):
    for listener in _listeners:
        listener(up)


def _patch():
    connection_error, consume_ready = QueueConsumer.on_connection_error, QueueConsumer.on_consume_ready

    @functools.wraps(connection_error)
    def on_connection_error(self, exc, interval):
        _tell(False)
        return connection_error(self, exc, interval)

    @functools.wraps(consume_ready)
    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        _tell(True)
        return consume_ready(self, connection, channel, consumers, **kwargs)

    QueueConsumer.on_connection_error = on_connection_error
    QueueConsumer.on_consume_ready = on_consume_ready
