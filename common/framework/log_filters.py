"""Logging filters for a broker outage: one line when it starts, not one per retry or a traceback.

While RabbitMQ is away, Nameko's queue consumer logs every reconnection attempt ("Error connecting to
broker ... Retrying in N seconds", 8 lines a minute per process) and kombu logs the lost connection
with a traceback. The outage is news once; the supervisor's and the health check's view says when it
ends (the outbox relay logs that itself). Installed by common.config.logging_config on the
`nameko.messaging` and `kombu.mixins` loggers.

Matches upstream's log messages by their text (Nameko 2.14.1, kombu 5.7.0):
`nameko.messaging.QueueConsumer.on_connection_error` ("Error connecting to broker at ...\nRetrying in
N seconds.") and `kombu.mixins.W_CONN_LOST` ("Connection to broker lost, ...", logged by
`kombu.mixins.ConsumerMixin.run` with exc_info). A changed wording lets every line through again."""
import logging
import time

QUIET_SECONDS = 60      # a retry line within this long of the last one shown is the same outage


class BrokerOutageOnce(logging.Filter):
    def __init__(self, name=""):
        super().__init__(name)
        self._last_shown = None

    def filter(self, record):
        message = record.getMessage()
        if "Connection to broker lost" in message:
            record.exc_info = record.exc_text = None        # the reason is in the line; no traceback
            return True
        if not message.startswith("Error connecting to broker"):
            return True
        now = time.monotonic()
        if self._last_shown is not None and now - self._last_shown < QUIET_SECONDS:
            self._last_shown = now                          # still the same outage
            return False
        self._last_shown = now
        record.msg, record.args = f"{message.splitlines()[0]} Retrying quietly until it is back.", None
        return True
