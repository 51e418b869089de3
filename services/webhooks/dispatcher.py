"""The process's senders: a pool of green threads (WEBHOOK_CONCURRENCY) fed by the delivery job, at most
PER_ENDPOINT deliveries of one endpoint in flight at once, so one slow or dead receiver holds two senders
at most and never delays another organization's deliveries. A send runs outside any transaction and any
consumer's acknowledgement; its row was claimed (deliveries.claim_due) and its outcome is recorded after.
"""
import logging
from collections import Counter
from datetime import timedelta

from eventlet.greenpool import GreenPool
from nameko.extensions import DependencyProvider

from common.config import settings
from common.timeutil import utcnow
from services.webhooks import deliveries, sender

log = logging.getLogger(__name__)

PER_ENDPOINT = 2


class Dispatcher:
    def __init__(self, config, clock=utcnow):
        self.config = config                  # common.config.WebhookSettings
        self.clock = clock
        self.pool = GreenPool(config.concurrency)
        self.busy = Counter()                 # endpoint id -> deliveries in flight
        # A claimed row is not due again before its send has ended (a send is cut at the timeout), or its
        # process died: then it is sent again after this (at least once).
        self.claim_for = timedelta(seconds=config.timeout_seconds + 10)

    def run_due(self, store, now=None):
        """Claim what the free senders can take now and start sending it; returns how many started."""
        claimed = deliveries.claim_due(store, now or self.clock(), self.pool.free(), self.busy,
                                       PER_ENDPOINT, self.claim_for)
        for delivery in claimed:
            self.busy[delivery[1]] += 1
            self.pool.spawn_n(self._send, store, *delivery)
        return len(claimed)

    def _send(self, store, delivery_id, endpoint_id, url, secrets, message_id, body):
        try:
            outcome = sender.send(url, message_id, body, secrets, self.config.timeout_seconds,
                                  self.config.allow_private_networks)
            deliveries.record(store, delivery_id, outcome, self.config, self.clock())
        except Exception:       # the database away: the claim runs out and the row is sent again
            log.warning("delivery %s: the attempt could not be recorded", delivery_id, exc_info=True)
        finally:
            self.busy[endpoint_id] -= 1
            if self.busy[endpoint_id] <= 0:
                del self.busy[endpoint_id]

    def wait(self):
        self.pool.waitall()


class DispatcherProvider(DependencyProvider):
    def setup(self):
        self.dispatcher = Dispatcher(settings().webhooks)

    def kill(self):
        for thread in list(self.dispatcher.pool.coroutines_running):
            thread.kill()

    def get_dependency(self, worker_ctx):
        return self.dispatcher
