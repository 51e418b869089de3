"""Prometheus metrics of every process (SPEC §14): what is counted, and where it is served. docs/metrics.md
lists every metric with its labels and meaning; a test holds it to this module.

Where each is counted (a thin hook in each place, the work here):
- HTTP requests, by method, route template and status, with their duration, and the refusals (4xx) by
  their error code: gateway.http.JsonWsgiApp.respond, once the answer is made (`http_answered`);
- RPC calls on the caller's side (the gateway, a service calling another): common.rpc.call (`timed_calls`);
  on the server's side: common.framework.rpc.Rpc, from the request's arrival to its reply (`rpc_received`,
  `rpc_served`);
- events published (once the broker confirmed them): common.outbox; consumed (once the reaction
  committed): common.inbox, and the audit service's own inbox (services/audit/reactions.py), which
  measure the read-model lag and the audit lag (from the change, its event's `occurred_at`, stamped in the
  change's transaction, to the reaction's commit);
- the outbox backlog and the age of its oldest row: read from the outbox table when scraped, kept a second
  (`watch_outbox`, from common.outbox.OutboxRelay);
- webhook delivery attempts by result: services/webhooks/dispatcher.py;
- the broker connection: common.framework.broker_state (Nameko's queue consumer connected or not).

Labels never carry a raw path, an id or any text a client chose: routes are the router's templates, methods
outside the HTTP verbs are "other", event types outside common.event_types are "other", and a label fed by
answers (an error code) takes at most MAX_LABEL_VALUES values ("other" after that).

Served (`start_process`, called by devtools.serve in every process): by a service on METRICS_PORT (a green
thread running eventlet's WSGI server: it never blocks a worker, and a worker never blocks it for longer
than a worker holds the hub), by the gateway at GET /metrics on its own port, answered before routing (no
worker taken: a gateway whose workers are all busy still answers its scrape). Open by default (the figures
hold no tenant's data); with METRICS_TOKEN set, a scrape must send `Authorization: Bearer <token>`. With
METRICS_ENABLED=false nothing is counted or served (every hook returns at once).

Cheap on the hot path: a hook is a few dictionary lookups and a lock taken and released (prometheus_client's
values); bench/spends.py --metrics-overhead measures spends with metrics on against off.
"""
import functools
import hmac
import json
import logging
import re
import time
from datetime import datetime

import eventlet
import eventlet.wsgi
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from common.errors import EXPECTED_ERRORS, ServiceUnavailable
from common.event_types import ALL_TYPES
from common.framework import broker_state
from common.framework.web import ROUTE_RULE
from common.timeutil import as_utc, utcnow

log = logging.getLogger(__name__)

# No `<name>_created` series beside each counter and histogram: twice the series, read by no panel.
disable_created_metrics()

PATH = "/metrics"               # the gateway's
# Seconds: a request, an RPC call (1 ms .. 10 s, the RPC time-out).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds: from a change to its audit entry or to another service's read model (ARCHITECTURE: p99 <= 1 s).
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
OUTBOX_CACHE_SECONDS = 1.0      # how long a reading of the outbox table serves scrapes
MAX_LABEL_VALUES = 200          # distinct values a label fed by answers may take before "other"
HTTP_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
NO_ROUTE = "none"               # a request no route took (a CORS preflight)
OTHER = "other"
EVENT_TYPES = frozenset(ALL_TYPES)

# ---- the metrics --------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "orgplatform_http_requests_total", "HTTP requests the gateway answered, by method, route template and status.",
    ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "orgplatform_http_request_duration_seconds", "Time from a request's arrival at the gateway to its answer.",
    ["method", "route"], buckets=LATENCY_BUCKETS)
HTTP_REFUSALS = Counter(
    "orgplatform_http_refusals_total", "Requests refused (4xx), by route template and the answer's error code.",
    ["method", "route", "reason"])
RPC_CLIENT_CALLS = Counter(
    "orgplatform_rpc_client_calls_total", "RPC calls this process made, by service, method and outcome "
    "(ok, refused: the service answered an error; unavailable: no answer; error: anything else).",
    ["service", "method", "outcome"])
RPC_CLIENT_DURATION = Histogram(
    "orgplatform_rpc_client_call_duration_seconds", "Time from an RPC call to its answer, on the caller's side.",
    ["service", "method"], buckets=LATENCY_BUCKETS)
RPC_SERVER_REQUESTS = Counter(
    "orgplatform_rpc_server_requests_total", "RPC requests this service handled, by method and outcome "
    "(ok, refused: an expected error answered; error: anything else).", ["service", "method", "outcome"])
RPC_SERVER_DURATION = Histogram(
    "orgplatform_rpc_server_request_duration_seconds", "Time from an RPC request's arrival to its reply.",
    ["service", "method"], buckets=LATENCY_BUCKETS)
EVENTS_PUBLISHED = Counter(
    "orgplatform_events_published_total", "Change events this process's outbox relay published (broker-confirmed).",
    ["type"])
EVENTS_CONSUMED = Counter(
    "orgplatform_events_consumed_total", "Change events this process reacted to (committed), by type and outcome "
    "(new; duplicate: a redelivery, recorded before).", ["type", "outcome"])
AUDIT_LAG = Histogram(
    "orgplatform_audit_lag_seconds", "Time from a change (its event's occurred_at) to its audit entry committed.",
    buckets=LAG_BUCKETS)
READ_MODEL_LAG = Histogram(
    "orgplatform_read_model_lag_seconds", "Time from a change (its event's occurred_at) to its state committed in "
    "this service's read models.", buckets=LAG_BUCKETS)
WEBHOOK_DELIVERIES = Counter(
    "orgplatform_webhook_deliveries_total", "Webhook delivery attempts by result (delivered; retrying: failed, "
    "tried again later; failed: failed, the delivery given up).", ["result"])
BROKER_UP = Gauge(
    "orgplatform_broker_up", "1 while this process's broker connection is up, 0 while it is not.")

_enabled = True


def enabled():
    return _enabled


# ---- HTTP (the gateway) -------------------------------------------------------------------------------
def http_answered(method, route, response, started):
    """A request answered: `route` the matched rule's template (None: no rule), `started` perf_counter()."""
    if not _enabled:
        return
    seconds = time.perf_counter() - started
    method = method if method in HTTP_METHODS else OTHER
    route = route or NO_ROUTE
    status = response.status_code
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(seconds)
    if 400 <= status < 500:
        HTTP_REFUSALS.labels(method, route, refusal_reason(response)).inc()


def refusal_reason(response):
    """The error code of a JSON error answer ({"error": {"code": ...}}), "unknown" for another body."""
    if response.mimetype != "application/json" or response.is_streamed:
        return "unknown"
    try:
        code = json.loads(response.get_data())["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "unknown"
    return bounded("reason", code)


_LABEL_TEXT = re.compile(r"[A-Za-z0-9_.:-]{1,80}")
_seen = {}


def bounded(label, value):
    """`value` as a value of `label`, or "other" once the label has MAX_LABEL_VALUES values (or for a value
    that is not a short identifier): a label fed by answers cannot grow without bound."""
    seen = _seen.setdefault(label, set())
    if value in seen:
        return value
    if not isinstance(value, str) or len(seen) >= MAX_LABEL_VALUES or not _LABEL_TEXT.fullmatch(value):
        return OTHER
    seen.add(value)
    return value


def gateway_answer(request):
    """GET /metrics on the gateway: every metric of the process, in the format the scraper asked for."""
    request.environ[ROUTE_RULE] = PATH
    if request.method not in ("GET", "HEAD"):
        return _json_error(405, "method_not_allowed", f"{request.method} is not a method of {PATH}.",
                           {"Allow": "GET, HEAD"})
    if not _authorized(request.headers.get("Authorization")):
        return _json_error(401, "invalid_token", "The metrics need the configured METRICS_TOKEN as a bearer token.",
                           {"WWW-Authenticate": 'Bearer realm="metrics"'})
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encoder(REGISTRY), status=200, content_type=content_type)


def _json_error(status, code, message, headers):
    return Response(json.dumps({"error": {"code": code, "message": message, "field": None}}), status=status,
                    headers=headers, mimetype="application/json")


_token = None


def _authorized(header):
    if _token is None:
        return True
    return hmac.compare_digest((header or "").encode(), f"Bearer {_token}".encode())


# ---- RPC ----------------------------------------------------------------------------------------------
def timed_calls(call):
    """common.rpc.call, counted by service, method and outcome, and timed."""
    @functools.wraps(call)
    def timed(method, *args, **kwargs):
        if not _enabled:
            return call(method, *args, **kwargs)
        started, outcome = time.perf_counter(), "error"
        try:
            answer = call(method, *args, **kwargs)
            outcome = "ok"
            return answer
        except BaseException as exc:
            outcome = call_outcome(exc)
            raise
        finally:
            labels = (method.service_name, getattr(method, "method_name", "?"))
            RPC_CLIENT_CALLS.labels(*labels, outcome).inc()
            RPC_CLIENT_DURATION.labels(*labels).observe(time.perf_counter() - started)
    return timed


def call_outcome(exc):
    if isinstance(exc, ServiceUnavailable) and exc.code == ServiceUnavailable.default_code:
        return "unavailable"        # nobody consumes the service, the broker is away, or no answer in time
    if isinstance(exc, EXPECTED_ERRORS):
        return "refused"
    return "error"


_RECEIVED = "orgplatform_received"      # the attribute a request's message carries its arrival in


def rpc_received(message):
    """An RPC request's message arrived (its worker is about to be spawned)."""
    if _enabled:
        try:
            setattr(message, _RECEIVED, time.perf_counter())
        except AttributeError:      # a message that takes no attribute (a test's): its duration goes unmeasured
            pass


def rpc_served(service, method, message, exc_info):
    """An RPC request's worker ended (its reply about to be sent): `exc_info` None, or what it raised."""
    if not _enabled:
        return
    if exc_info is None:
        outcome = "ok"
    else:
        outcome = "refused" if isinstance(exc_info[1], EXPECTED_ERRORS) else "error"
    RPC_SERVER_REQUESTS.labels(service, method, outcome).inc()
    received = getattr(message, _RECEIVED, None)
    if received is not None:
        RPC_SERVER_DURATION.labels(service, method).observe(time.perf_counter() - received)


# ---- events -------------------------------------------------------------------------------------------
def event_type(type_):
    return type_ if type_ in EVENT_TYPES else OTHER


def events_published(types):
    """Events of these types were published and confirmed by the broker."""
    if _enabled:
        for type_ in types:
            EVENTS_PUBLISHED.labels(event_type(type_)).inc()


def events_consumed(events, new_ids, audit=False):
    """Checked change events (common.events.parse_change_event) whose reaction committed; `new_ids` the ids
    of those not recorded before. The lag of each new one is observed: the audit lag (`audit`), else the
    read-model lag for an event carrying states (common.readmodels)."""
    if not _enabled:
        return
    now = utcnow()
    for event in events:
        new = event["event_id"] in new_ids
        EVENTS_CONSUMED.labels(event_type(event.get("type")), "new" if new else "duplicate").inc()
        occurred_at = event.get("occurred_at")
        if not new or not isinstance(occurred_at, datetime):
            continue
        lag = max((now - occurred_at).total_seconds(), 0.0)
        if audit:
            AUDIT_LAG.observe(lag)
        elif event.get("state"):
            READ_MODEL_LAG.observe(lag)


class _OutboxBacklog:
    """The outbox's unpublished rows and the age of the oldest, read when scraped (one indexed query, its
    answer kept OUTBOX_CACHE_SECONDS); the sum over the outboxes watched (one per service process)."""

    def __init__(self):
        self.outboxes = {}          # (database URL, table) -> (store, model)
        self._reading = None        # (monotonic time read, unpublished rows, oldest created_at or None)

    def watch(self, store, model):
        self.outboxes[(str(store.url), model.__table__.name)] = (store, model)
        self._reading = None

    def collect(self):
        backlog = GaugeMetricFamily("orgplatform_outbox_backlog_events",
                                    "Change events in this service's outbox not yet published.")
        age = GaugeMetricFamily("orgplatform_outbox_oldest_age_seconds",
                                "Age of the oldest change event not yet published (0: none).")
        reading = self._read() if self.outboxes and _enabled else None
        if reading is not None:
            _, count, oldest = reading
            backlog.add_metric([], count)
            age.add_metric([], max((utcnow() - oldest).total_seconds(), 0.0) if oldest is not None else 0.0)
        yield backlog
        yield age

    def _read(self):
        if self._reading is not None and time.monotonic() - self._reading[0] < OUTBOX_CACHE_SECONDS:
            return self._reading
        count, oldest = 0, None
        try:
            for store, model in list(self.outboxes.values()):
                with store.read() as session:
                    rows, first = session.execute(select(func.count(), func.min(model.created_at))
                                                  .where(model.published_at.is_(None))).one()
                count += rows
                if first is not None:
                    first = as_utc(first)
                    oldest = first if oldest is None else min(oldest, first)
        except Exception:           # the database away: no figure rather than a wrong one, nor a failed scrape
            log.debug("the outbox backlog could not be read", exc_info=True)
            return None
        self._reading = (time.monotonic(), count, oldest)
        return self._reading


_outbox_backlog = _OutboxBacklog()
REGISTRY.register(_outbox_backlog)


def watch_outbox(store, model):
    """Report the backlog of this outbox table (the service's OutboxRelay calls this at setup)."""
    _outbox_backlog.watch(store, model)


# ---- webhooks, broker ---------------------------------------------------------------------------------
WEBHOOK_RESULTS = {"delivered": "delivered", "pending": "retrying"}


def webhook_attempted(status):
    """A delivery attempt recorded; `status` the delivery's status after it (services/webhooks/deliveries.py)."""
    if _enabled:
        WEBHOOK_DELIVERIES.labels(WEBHOOK_RESULTS.get(status, "failed")).inc()


def broker_connected(up):
    BROKER_UP.set(1 if up else 0)


# ---- serving ------------------------------------------------------------------------------------------
class MetricsServer:
    """eventlet's WSGI server on its own green thread, answering every path with the process's metrics."""

    SOCKET_TIMEOUT_SECONDS = 10     # a client that sends nothing is dropped after this

    def __init__(self, port, token=None, host="0.0.0.0"):
        self.listener = eventlet.listen((host, port))
        self.port = self.listener.getsockname()[1]
        app = _bearer_only(make_wsgi_app(REGISTRY), token) if token else make_wsgi_app(REGISTRY)
        self.thread = eventlet.spawn(eventlet.wsgi.server, self.listener, app, log=log, log_output=False,
                                     socket_timeout=self.SOCKET_TIMEOUT_SECONDS)

    def stop(self):
        self.thread.kill()
        self.listener.close()


def _bearer_only(app, token):
    expected = f"Bearer {token}".encode()

    def protected(environ, start_response):
        if not hmac.compare_digest(environ.get("HTTP_AUTHORIZATION", "").encode(), expected):
            start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                                ("WWW-Authenticate", 'Bearer realm="metrics"')])
            return [b"The metrics need the configured METRICS_TOKEN as a bearer token.\n"]
        return app(environ, start_response)
    return protected


def start_process(config):
    """Once per process, at start (devtools.serve), with its settings (common.config.Settings): metrics on or
    off, the broker connection watched, and, with a METRICS_PORT, the metrics served on it. Returns the
    MetricsServer, or None."""
    global _enabled, _token
    _enabled, _token = config.metrics.enabled, config.metrics.token
    if not _enabled:
        return None
    broker_state.watch(broker_connected)
    if config.metrics.port:
        server = MetricsServer(config.metrics.port, _token)
        log.info("metrics served on port %d", server.port)
        return server
    return None
