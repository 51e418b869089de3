"""The process's senders: lanes (green threads, WEBHOOK_CONCURRENCY of them) fed by the delivery job. An
endpoint with deliveries due gets up to PER_ENDPOINT lanes; a lane sends that endpoint's due deliveries
one after the other (claiming each: deliveries.claim_next), at most LANE_TURN of them before it gives its
place back, and stops at a failed attempt (the job's next tick starts it again), so a slow or dead
receiver holds two lanes at most and is not sent one delivery after another that it fails, a busy one
cannot keep the others waiting for long, and nothing waits for the job's next tick while a backlog is
being sent. A send runs outside
any transaction and any consumer's acknowledgement; its outcome is recorded after it.
"""
import logging
from collections import Counter
from datetime import timedelta

from eventlet.greenpool import GreenPool
from nameko.extensions import DependencyProvider

from common import metrics
from common.config import settings
from common.timeutil import utcnow
from services.webhooks import deliveries, sender

log = logging.getLogger(__name__)

PER_ENDPOINT = 2
LANE_TURN = 50


class Dispatcher:
    def __init__(self, config, clock=utcnow):
        self.config = config                  # common.config.WebhookSettings
        self.clock = clock
        self.pool = GreenPool(config.concurrency)
        self.busy = Counter()                 # endpoint id -> its lanes running
        # A claimed row is not due again before its send has ended (a send is cut at the timeout), or its
        # process died: then it is sent again after this (at least once).
        self.claim_for = timedelta(seconds=config.timeout_seconds + 10)

    def run_due(self, store, now=None):
        """Start lanes for the endpoints with deliveries due, as far as lanes are free; returns how many."""
        started = 0
        for endpoint_id in deliveries.due_endpoints(store, now or self.clock()):
            while self.busy[endpoint_id] < PER_ENDPOINT and self.pool.free() > 0:
                self.busy[endpoint_id] += 1
                self.pool.spawn_n(self._lane, store, endpoint_id)
                started += 1
            if self.pool.free() == 0:
                break
        return started

    def _lane(self, store, endpoint_id):
        try:
            for _ in range(LANE_TURN):
                claimed = deliveries.claim_next(store, endpoint_id, self.clock(), self.claim_for)
                if claimed is None or not self._send(store, *claimed).delivered:
                    break       # nothing more due, or a receiver failing: its next tick tries it again
        except Exception:       # the database away: claimed rows come back when their claim runs out
            log.warning("webhook endpoint %s: its lane stopped", endpoint_id, exc_info=True)
        finally:
            self.busy[endpoint_id] -= 1
            if self.busy[endpoint_id] <= 0:
                del self.busy[endpoint_id]

    def _send(self, store, delivery_id, url, secrets, message_id, body):
        outcome = sender.send(url, message_id, body, secrets, self.config.timeout_seconds,
                              self.config.allow_private_networks)
        metrics.webhook_attempted(deliveries.record(store, delivery_id, outcome, self.config, self.clock()))
        return outcome

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
