"""Traces (SPEC §14): a W3C trace context (`traceparent`, `tracestate`) accepted at the gateway, or started
there, carried through every RPC call and every event, and a span for each hop. docs/tracing.md is the
operator's account; in short:

- Where the context travels: in a worker's Nameko context data under `traceparent` (and `tracestate`),
  which Nameko copies into the `nameko.traceparent` header of every RPC request the worker sends; in a
  change event's envelope (`traceparent`, optional, written with the outbox row in the command's
  transaction), from which the outbox relay publishes the event with a `nameko.traceparent` header that
  Nameko's consumers unpack into their worker's context data again.
- The spans, each made by the project's own entrypoints (the OpenTelemetry instrumentation published for
  Nameko needs Nameko 3): the gateway's request (server, gateway.http), an RPC call (client,
  common.rpc.call) and its handling (server, common.framework.rpc), an event's publication (producer,
  common.outbox) and each reaction to it (consumer, common.framework.consume and .batch_consume).
- Two modes, decided once per process. With OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) set,
  spans are OpenTelemetry SDK spans, batched (BatchSpanProcessor) and exported over OTLP/HTTP. Without
  it, no SDK is imported and no span recorded: a hop only takes a new span id (64 random bits) under the
  trace id it was given, or a new trace id at the gateway, so log lines still carry the ids (what they
  cost is measured in bench/spends.py) and a process that exports continues the same trace.
- Log lines: every record gets `trace_id` and `span_id` (TraceIdFilter): those of the span the logging
  green thread serves (`serve`), as it gets `request_id` from common.request_ids. With LOG_LEVEL=DEBUG
  each span also writes one line when it ends (name, kind, duration, outcome): a trace readable in the
  logs without a collector.

The SDK's own context (contextvars) is not used: under eventlet a worker runs in a green thread of its
own, spawned by Nameko, so each span is started with its parent given explicitly, and the current one is
kept green-thread-local (as the request id is).
"""
import functools
import logging
import os
import random
import re
import threading
import time
from contextlib import contextmanager

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"     # the key in context data, envelopes and (with Nameko's prefix) headers
TRACESTATE = "tracestate"
HEADER_PREFIX = "nameko."       # nameko.messaging.HeaderEncoder's: what Nameko's consumers unpack

SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL = "server", "client", "producer", "consumer", "internal"

# W3C Trace Context, level 1: version-traceid-parentid-flags, lowercase hex. A later version may append
# fields after a dash; version ff is invalid, as are all-zero ids.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.ASCII)
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
# A tracestate is passed on as given when it is printable ASCII of at most 512 characters (W3C's limit for
# propagation); anything else is dropped, so nothing a client sends can forge a header or a log line.
_TRACESTATE = re.compile(r"[\x20-\x7e]{1,512}", re.ASCII)


class TraceContext:
    """A span's W3C identity: hex ids, the flags' byte and the vendors' tracestate (or None)."""
    __slots__ = ("trace_id", "span_id", "flags", "state")

    def __init__(self, trace_id, span_id, flags="01", state=None):
        self.trace_id, self.span_id, self.flags, self.state = trace_id, span_id, flags, state

    @property
    def traceparent(self):
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    @property
    def sampled(self):
        return bool(int(self.flags, 16) & 1)

    def __eq__(self, other):
        return isinstance(other, TraceContext) and (self.trace_id, self.span_id, self.flags, self.state) == \
            (other.trace_id, other.span_id, other.flags, other.state)

    def __repr__(self):
        return f"TraceContext({self.traceparent!r}, state={self.state!r})"


def parse(traceparent, tracestate=None):
    """The context a `traceparent` (and `tracestate`) value names, or None for a value that is not a valid
    one (W3C rules: then a new trace is started, and the tracestate ignored)."""
    if not isinstance(traceparent, str) or len(traceparent) > 512:
        return None
    match = _TRACEPARENT.fullmatch(traceparent.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    state = tracestate.strip() if isinstance(tracestate, str) and _TRACESTATE.fullmatch(tracestate.strip()) else None
    return TraceContext(trace_id, span_id, flags, state or None)


def extract(carrier):
    """The context in a mapping (context data, an event's envelope, unpacked headers), or None."""
    return parse(carrier.get(TRACEPARENT), carrier.get(TRACESTATE)) if carrier else None


def inject(carrier, context):
    """Write `context` into a mapping as `traceparent` and `tracestate` (removed when it has none). Never a
    None value: Nameko warns about those in headers and drops them."""
    carrier[TRACEPARENT] = context.traceparent
    if context.state:
        carrier[TRACESTATE] = context.state
    else:
        carrier.pop(TRACESTATE, None)


def message_headers(context, **more):
    """AMQP headers carrying `context` (and `more`, such as the request id) as Nameko's consumers unpack
    them into their worker's context data; None values left out."""
    headers = {f"{HEADER_PREFIX}{key}": value for key, value in more.items() if value is not None}
    if context is not None:
        headers[HEADER_PREFIX + TRACEPARENT] = context.traceparent
        if context.state:
            headers[HEADER_PREFIX + TRACESTATE] = context.state
    return headers


def _new_span_id():
    return f"{random.getrandbits(64) or 1:016x}"


def _new_trace_id():
    return f"{random.getrandbits(128) or 1:032x}"


# ---- spans ----------------------------------------------------------------------------------------------
class Span:
    """A hop when nothing is exported: ids only (a new span id under the parent's trace, or a new trace),
    and the time it started for its DEBUG line."""
    __slots__ = ("context", "name", "kind", "started")
    recording = False

    def __init__(self, context, name, kind):
        self.context, self.name, self.kind, self.started = context, name, kind, time.perf_counter()

    def set_attribute(self, key, value):
        """Recorded by an exported span only (check `recording` before computing an expensive value)."""

    def rename(self, name):
        self.name = name

    def end(self, error=None, failed=None):
        """The span is over. `error`: the exception it ended with; `failed`: whether it failed (by default,
        whether `error` is a failure, see `failure`)."""
        if log.isEnabledFor(logging.DEBUG):
            _span_line(self.context, self.kind, self.name, self.started, error, failed)


class _ExportedSpan:
    """An OpenTelemetry SDK span, with the same methods as Span."""
    __slots__ = ("span", "context", "name", "kind", "started")
    recording = True

    def __init__(self, span, name, kind):
        self.span, self.name, self.kind, self.started = span, name, kind, time.perf_counter()
        self.context = _context_of(span.get_span_context())

    def set_attribute(self, key, value):
        if value is not None:
            self.span.set_attribute(key, value)

    def rename(self, name):
        self.name = name
        self.span.update_name(name)

    def end(self, error=None, failed=None):
        if error is not None:
            self.span.set_attribute("error.type", type(error).__qualname__)
        if failed if failed is not None else (error is not None and failure(error)):
            from opentelemetry.trace import Status, StatusCode
            self.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:300] if error else None))
        self.span.end()
        if log.isEnabledFor(logging.DEBUG):
            _span_line(self.context, self.kind, self.name, self.started, error, failed)


def failure(error):
    """Whether a span that ended with `error` failed: a refusal (common.errors: a `status` below 500, e.g.
    a 404 or a 402) is the call's answer; anything else (a 503, an unexpected exception) is a failure."""
    status = getattr(error, "status", None)
    return not (isinstance(status, int) and status < 500)


def _span_line(context, kind, name, started, error, failed):
    if failed is None:
        failed = error is not None and failure(error)
    outcome = ("failed" if failed else "ok") + (f" {type(error).__name__}" if error is not None else "")
    log.debug("span %s %s %.1fms %s", kind, name, (time.perf_counter() - started) * 1000, outcome,
              extra={"trace_context": context})


def start(service, name, kind, parent=None, attributes=None, links=()):
    """A span named `name` of `kind`, child of the `parent` TraceContext (None: a new trace) in the process
    of `service` (the Nameko service's name, the resource's service.name). `attributes` are recorded only
    when exported; `links` are other TraceContexts it relates to (exported only)."""
    exporting = _exporting()
    if exporting is None:
        if parent is None:
            return Span(TraceContext(_new_trace_id(), _new_span_id()), name, kind)
        return Span(TraceContext(parent.trace_id, _new_span_id(), parent.flags, parent.state), name, kind)
    return exporting.start(service, name, kind, parent, attributes, links)


# ---- the current green thread's span (log lines; the parent of what a worker sends) ---------------------
# Thread-local is green-thread-local under eventlet; Nameko runs a worker, its setup and teardown in one
# green thread (as common.request_ids relies on too).
_current = threading.local()


def serve(context):
    """The logging green thread serves the span `context` (a TraceContext, or None: none)."""
    _current.context = context


def current():
    return getattr(_current, "context", None)


# The attribute of a Nameko WorkerContext holding the context of the span its worker serves (the RPC
# call's or the event's, made by the entrypoint, or the gateway's request): the parent of every RPC call
# it makes, whichever green thread makes it (the health route pings every service from a GreenPile).
WORKER_CONTEXT_ATTRIBUTE = "trace_context"


def serve_worker(worker_ctx):
    """A worker starts (common.auth.Auth.worker_setup, in the worker's green thread): its span is the one
    its context data names."""
    context = extract(worker_ctx.data)
    setattr(worker_ctx, WORKER_CONTEXT_ATTRIBUTE, context)
    serve(context)


def of_worker(worker_ctx):
    """The context of the span `worker_ctx`'s worker serves, or None (a timer's worker serves none)."""
    context = getattr(worker_ctx, WORKER_CONTEXT_ATTRIBUTE, _UNSET)
    return extract(getattr(worker_ctx, "data", None)) if context is _UNSET else context


_UNSET = object()


def received(service, name, kind, context_data, fallback=None, attributes=None):
    """An entrypoint received a message (an RPC request, an event): its span, child of the context the
    message carried (`context_data`, unpacked from its headers; else `fallback`, e.g. the event's
    envelope), written into `context_data` for the worker it spawns."""
    parent = extract(context_data)
    if parent is None and fallback is not None:
        parent = extract(fallback)
    span = start(service, name, kind, parent, attributes)
    inject(context_data, span.context)
    return span


# ---- HTTP requests (the gateway: common.framework.web) ----------------------------------------------------
HTTP_SPAN = "orgplatform.trace_span"         # the WSGI environ key of the request's server span


def http_request_started(service, environ):
    """The gateway received a request: its server span, child of the client's `traceparent` header (a new
    trace when it has none or an invalid one), served by the green thread (the access line) until
    `http_request_ended`; named by the route's rule once routed."""
    parent = parse(environ.get("HTTP_TRACEPARENT"), environ.get("HTTP_TRACESTATE"))
    method = environ.get("REQUEST_METHOD") or "HTTP"
    span = environ[HTTP_SPAN] = start(service, method, SERVER, parent)
    if span.recording:
        span.set_attribute("http.request.method", method)
        span.set_attribute("url.path", (environ.get("PATH_INFO") or "")[:300])
        span.set_attribute("url.scheme", environ.get("wsgi.url_scheme"))
        span.set_attribute("server.port", int(environ["SERVER_PORT"]) if environ.get("SERVER_PORT", "").isdigit()
                           else None)
    serve(span.context)
    return span


def http_request_ended(span, method, route, status, error=None):
    """The answer (`status`) to the request whose `route` (the rule matched, e.g. /v1/organizations/<org_id>;
    None when none matched) is known; a 5xx is a failure."""
    if route:
        span.rename(f"{method} {route}")
        span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    serve(None)
    span.end(error, failed=error is not None or (status or 500) >= 500)


def into_worker(environ, context_data):
    """The worker spawned for a request serves the request's span (and sends it in its RPC calls)."""
    span = environ.get(HTTP_SPAN)
    if span is not None:
        inject(context_data, span.context)


# ---- RPC calls (common.rpc.call) --------------------------------------------------------------------------
_calling = threading.local()        # the client span of the call the green thread is making


def rpc_client(call):
    """Decorates common.rpc.call(method, ...): a client span per call ("service.method"), child of the
    span the calling worker serves, ended with the call's answer (or its failure: tracing.failure). The
    request carries it through `outgoing`. A proxy without a worker's context data (a test double) is
    called untraced."""
    @functools.wraps(call)
    def traced(method, *args, **kwargs):
        worker_ctx = getattr(method, "worker_ctx", None)
        if not isinstance(getattr(worker_ctx, "data", None), dict):
            return call(method, *args, **kwargs)
        span = start(getattr(worker_ctx, "service_name", None),
                     f"{method.service_name}.{getattr(method, 'method_name', '?')}", CLIENT, of_worker(worker_ctx))
        if span.recording:
            span.set_attribute("rpc.system", "nameko")
            span.set_attribute("rpc.service", method.service_name)
            span.set_attribute("rpc.method", getattr(method, "method_name", None))
        _calling.span = span
        try:
            result = call(method, *args, **kwargs)
        except Exception as error:
            span.end(error)
            raise
        finally:
            _calling.span = None
        span.end()
        return result
    return traced


@contextmanager
def outgoing(method):
    """Around `method.call_async(...)`: the request's headers carry the client span of the call (Nameko
    makes them from the worker's context data as it publishes, before it first yields). Then the context
    data names the worker's own span again (not the value found: a green thread of the same worker may
    be calling at the same time, common.rpc.call under the health route's GreenPile)."""
    span = getattr(_calling, "span", None)
    data = getattr(getattr(method, "worker_ctx", None), "data", None)
    if span is None or not isinstance(data, dict):
        yield
        return
    worker = of_worker(method.worker_ctx)
    inject(data, span.context)
    try:
        yield
    finally:
        if worker is not None:
            inject(data, worker)
        else:
            data.pop(TRACEPARENT, None)
            data.pop(TRACESTATE, None)


class TraceIdFilter(logging.Filter):
    """Gives every log record `trace_id` and `span_id`: those of the span the logging green thread serves
    (or of the span a DEBUG span line is about), "-" outside one. Installed on the console handler by
    common.config.logging_config."""

    def filter(self, record):
        context = getattr(record, "trace_context", None) or current()
        record.trace_id, record.span_id = (context.trace_id, context.span_id) if context else ("-", "-")
        return True


class ExportFailuresQuiet(logging.Filter):
    """While the collector is away the OpenTelemetry SDK logs every failed export (a warning per retry, an
    error per batch given up, a warning per span dropped from a full queue): a few lines a second per
    process. One line of theirs a minute is let through, saying so; the spans meanwhile are dropped (they
    are not kept for later, unlike events). Installed on the console handler by
    common.config.logging_config; other records pass untouched."""

    QUIET_SECONDS = 60

    def __init__(self, name=""):
        super().__init__(name)
        self._last_shown = None

    def filter(self, record):
        if not record.name.startswith("opentelemetry") or record.levelno < logging.WARNING:
            return True
        now = time.monotonic()
        if self._last_shown is not None and now - self._last_shown < self.QUIET_SECONDS:
            return False
        self._last_shown = now
        record.msg = f"{record.getMessage()} (spans are dropped while this lasts; said once a minute)"
        record.args = None
        record.exc_info = record.exc_text = None
        return True


# ---- exporting (OpenTelemetry SDK, imported only when an endpoint is configured) -----------------------
_UNDECIDED = object()
_exporter = _UNDECIDED
_lock = threading.Lock()


def _exporting():
    exporter = _exporter
    if exporter is _UNDECIDED:
        return _decide()
    return exporter


def _decide():
    global _exporter
    with _lock:
        if _exporter is _UNDECIDED:
            _exporter = _Exporting.from_environment() if endpoint_configured() else None
        return _exporter


def endpoint_configured(environ=None):
    """Whether spans are exported: an OTLP endpoint is set (and OTEL_SDK_DISABLED is not true)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def export_to(span_exporter, batch=False):
    """Export this process's spans with `span_exporter` from now on (tests: an InMemorySpanExporter), one
    by one (SimpleSpanProcessor) unless `batch`. `reset()` undoes it."""
    global _exporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    with _lock:
        _exporter = _Exporting((BatchSpanProcessor if batch else SimpleSpanProcessor)(span_exporter))


def reset():
    """Decide again, from the environment, on the next span (tests)."""
    global _exporter
    with _lock:
        exporting, _exporter = _exporter, _UNDECIDED
    if isinstance(exporting, _Exporting):
        exporting.shutdown()


def flush(timeout_millis=5000):
    """Export the spans ended so far (tests, and before a process ends: the SDK also does it at exit)."""
    exporting = _exporter
    if isinstance(exporting, _Exporting):
        exporting.processor.force_flush(timeout_millis)


class _Exporting:
    """The SDK's side: a TracerProvider per service name (the resource names the service), all sharing one
    span processor, so a process has one export thread whatever it runs."""

    def __init__(self, processor):
        from opentelemetry import trace
        self.trace = trace
        self.kinds = {SERVER: trace.SpanKind.SERVER, CLIENT: trace.SpanKind.CLIENT,
                      PRODUCER: trace.SpanKind.PRODUCER, CONSUMER: trace.SpanKind.CONSUMER,
                      INTERNAL: trace.SpanKind.INTERNAL}
        self.processor = processor
        self.tracers = {}

    @classmethod
    def from_environment(cls):
        # OTLP over HTTP (protobuf): the exporter reads its endpoint, headers, timeout and compression from
        # the OTEL_EXPORTER_OTLP_* variables; the processor its delays and sizes from OTEL_BSP_*.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        return cls(BatchSpanProcessor(OTLPSpanExporter()))

    def tracer(self, service):
        tracer = self.tracers.get(service)
        if tracer is None:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            # OTEL_SERVICE_NAME, when set, names every service of the process; else the Nameko service's
            # name does. OTEL_RESOURCE_ATTRIBUTES add to it (Resource.create reads both).
            name = os.environ.get("OTEL_SERVICE_NAME") or service or "orgplatform"
            provider = TracerProvider(resource=Resource.create({"service.name": name}))
            provider.add_span_processor(self.processor)
            tracer = self.tracers[service] = provider.get_tracer("orgplatform")
        return tracer

    def start(self, service, name, kind, parent, attributes, links):
        trace = self.trace
        context = None
        if parent is not None:
            context = trace.set_span_in_context(trace.NonRecordingSpan(_span_context(trace, parent, remote=True)))
        span = self.tracer(service).start_span(
            name, context=context, kind=self.kinds[kind], attributes=attributes,
            links=[trace.Link(_span_context(trace, link, remote=True)) for link in links])
        return _ExportedSpan(span, name, kind)

    def shutdown(self):
        self.processor.shutdown()       # the providers' own shutdown (at exit) only shuts it down too


def _span_context(trace, context, remote):
    state = trace.TraceState.from_header([context.state]) if context.state else None
    return trace.SpanContext(int(context.trace_id, 16), int(context.span_id, 16), is_remote=remote,
                             trace_flags=trace.TraceFlags(int(context.flags, 16)), trace_state=state)


def _context_of(span_context):
    state = span_context.trace_state.to_header() if span_context.trace_state else None
    return TraceContext(f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}",
                        f"{span_context.trace_flags:02x}", state or None)
