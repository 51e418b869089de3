"""common.tracing: a W3C trace context is read and written as the recommendation says, each hop (an RPC
call and its handling, an event's publication and each reaction to it) is a span in the trace it was
given, and without an OTLP endpoint no span is recorded but the ids still travel (for the log lines)."""
import json
import logging
from types import SimpleNamespace

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from common import outbox, tracing
from common.errors import NotFound, ServiceUnavailable
from common.events import change_event
from common.framework.consume import Consumer
from common.framework.rpc import Rpc
from common.rpc import call

TRACE_ID, SPAN_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"


@pytest.fixture(autouse=True)
def not_exporting(environment):
    """Each test starts without an exporter (no OTLP endpoint in its environment)."""
    environment.unset("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    tracing.reset()
    yield
    tracing.reset()
    tracing.serve(None)


@pytest.fixture
def exported():
    """The spans this process exports from now on (an in-memory exporter)."""
    exporter = InMemorySpanExporter()
    tracing.export_to(exporter)
    return exporter


def ids(span):
    """(trace id, span id, parent span id or None) of an exported span, as hex."""
    context = span.get_span_context()
    return (f"{context.trace_id:032x}", f"{context.span_id:016x}",
            f"{span.parent.span_id:016x}" if span.parent else None)


# ---- the W3C header -------------------------------------------------------------------------------------
def test_a_valid_traceparent_is_read_with_its_tracestate():
    context = tracing.parse(TRACEPARENT, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
    assert (context.trace_id, context.span_id, context.flags) == (TRACE_ID, SPAN_ID, "01")
    assert context.sampled and context.state == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert context.traceparent == TRACEPARENT
    assert not tracing.parse(f"00-{TRACE_ID}-{SPAN_ID}-00").sampled
    # A later version may carry more fields; they are not ours to keep (we write version 00).
    assert tracing.parse(f"cc-{TRACE_ID}-{SPAN_ID}-01-what-comes-later").traceparent == TRACEPARENT


@pytest.mark.parametrize("value", [
    None, "", "garbage", f"ff-{TRACE_ID}-{SPAN_ID}-01", f"00-{'0' * 32}-{SPAN_ID}-01", f"00-{TRACE_ID}-{'0' * 16}-01",
    f"00-{TRACE_ID.upper()}-{SPAN_ID}-01", f"00-{TRACE_ID}-{SPAN_ID}-01-extra", f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01",
    f"00-{TRACE_ID}-{SPAN_ID}-1", f"00_{TRACE_ID}_{SPAN_ID}_01", f"00-{TRACE_ID}-{SPAN_ID}-01\nforged", 42,
])
def test_an_invalid_traceparent_is_none(value):
    assert tracing.parse(value) is None


def test_a_tracestate_that_could_forge_a_header_or_a_line_is_dropped():
    assert tracing.parse(TRACEPARENT, "a=1\r\nX-Evil: 1").state is None
    assert tracing.parse(TRACEPARENT, "a=" + "x" * 600).state is None
    assert tracing.parse(TRACEPARENT, "").state is None


def test_a_context_travels_in_a_mapping_and_in_nameko_headers():
    carrier = {"tracestate": "stale=1"}
    tracing.inject(carrier, tracing.parse(TRACEPARENT))
    assert carrier == {"traceparent": TRACEPARENT}                  # no tracestate: none left behind
    tracing.inject(carrier, tracing.parse(TRACEPARENT, "a=1"))
    assert tracing.extract(carrier) == tracing.parse(TRACEPARENT, "a=1")
    assert tracing.message_headers(tracing.parse(TRACEPARENT), request_id="r1", nothing=None) == \
        {"nameko.traceparent": TRACEPARENT, "nameko.request_id": "r1"}
    assert tracing.extract({}) is None and tracing.extract(None) is None


# ---- spans without an exporter: ids only ----------------------------------------------------------------
def test_without_an_endpoint_a_hop_takes_a_new_span_id_in_the_trace_it_was_given():
    parent = tracing.parse(TRACEPARENT, "a=1")
    span = tracing.start("orgs", "orgs.rename", tracing.SERVER, parent)
    assert not span.recording
    assert (span.context.trace_id, span.context.flags, span.context.state) == (TRACE_ID, "01", "a=1")
    assert span.context.span_id != SPAN_ID and len(span.context.span_id) == 16
    root = tracing.start("gateway", "GET", tracing.SERVER)
    assert len(root.context.trace_id) == 32 and root.context.trace_id != TRACE_ID
    span.set_attribute("ignored", 1)
    span.end(ValueError("no one is listening"))
    assert tracing._exporter is None                 # decided once: nothing of the SDK was set up
    assert tracing.endpoint_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert not tracing.endpoint_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                                            "OTEL_SDK_DISABLED": "true"})


def test_with_an_exporter_a_span_is_the_child_of_the_context_it_was_given(exported):
    span = tracing.start("orgs", "orgs.rename", tracing.SERVER, tracing.parse(TRACEPARENT, "a=1"), {"k": "v"})
    assert span.recording and span.context.trace_id == TRACE_ID and span.context.state == "a=1"
    span.end()
    [finished] = exported.get_finished_spans()
    assert ids(finished) == (TRACE_ID, span.context.span_id, SPAN_ID)
    assert finished.kind == SpanKind.SERVER and finished.attributes["k"] == "v"
    assert finished.resource.attributes["service.name"] == "orgs"
    assert finished.status.status_code == StatusCode.UNSET


def test_a_refusal_is_an_answer_and_anything_else_a_failure(exported):
    for error in (NotFound("no such organization"), ServiceUnavailable("credits is not running"), KeyError("x")):
        tracing.start("orgs", "orgs.get", tracing.SERVER).end(error)
    refused, unavailable, crashed = exported.get_finished_spans()
    assert refused.status.status_code == StatusCode.UNSET and refused.attributes["error.type"] == "NotFound"
    assert unavailable.status.status_code == StatusCode.ERROR
    assert crashed.status.status_code == StatusCode.ERROR and crashed.attributes["error.type"] == "KeyError"


# ---- the RPC client: common.rpc.call ----------------------------------------------------------------------
class Reply:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class MethodProxy:
    """A proxy method as Nameko's: its request's headers are the worker's context data when it is sent."""

    def __init__(self, worker_ctx, service_name, method_name, answer=None):
        self.worker_ctx, self.service_name, self.method_name = worker_ctx, service_name, method_name
        self.answer = answer
        self.sent = []

    def call_async(self, *args, **kwargs):
        self.sent.append(dict(self.worker_ctx.data))
        if isinstance(self.answer, Exception):
            raise self.answer
        return Reply(self.answer)


def worker(data):
    worker_ctx = SimpleNamespace(data=data, service_name="gateway")
    tracing.serve_worker(worker_ctx)
    return worker_ctx


def test_an_rpc_call_is_a_client_span_whose_context_its_request_carries(exported):
    worker_ctx = worker({"traceparent": TRACEPARENT, "request_id": "r1"})
    method = MethodProxy(worker_ctx, "orgs", "get_organization", answer={"id": "o1"})
    assert call(method, "o1") == {"id": "o1"}
    [client] = exported.get_finished_spans()
    assert client.name == "orgs.get_organization" and client.kind == SpanKind.CLIENT
    trace_id, client_id, parent_id = ids(client)
    assert (trace_id, parent_id) == (TRACE_ID, SPAN_ID)
    [sent] = method.sent
    assert (sent["traceparent"], sent["request_id"]) == (f"00-{TRACE_ID}-{client_id}-01", "r1")
    assert worker_ctx.data["traceparent"] == TRACEPARENT          # the worker's own span again afterwards


def test_a_call_that_fails_ends_its_span_failed_and_the_worker_keeps_its_span(exported):
    worker_ctx = worker({"traceparent": TRACEPARENT})
    with pytest.raises(ServiceUnavailable):     # the broker went away: a 503, a failure of the call
        call(MethodProxy(worker_ctx, "orgs", "get_organization", answer=OSError("broker away")), "o1")
    [client] = exported.get_finished_spans()
    assert client.status.status_code == StatusCode.ERROR and client.attributes["error.type"] == "ServiceUnavailable"
    assert worker_ctx.data["traceparent"] == TRACEPARENT and "tracestate" not in worker_ctx.data


def test_calls_made_at_once_by_green_threads_of_one_worker_each_carry_their_own_span(exported):
    import eventlet
    worker_ctx = worker({"traceparent": TRACEPARENT})

    class Slow(MethodProxy):
        def call_async(self, *args, **kwargs):
            reply = super().call_async(*args, **kwargs)     # the headers are made before the first yield
            eventlet.sleep(0.01)
            return reply
    methods = [Slow(worker_ctx, name, "ping", answer="pong") for name in ("orgs", "members", "credits")]
    pile = eventlet.GreenPile()
    for method in methods:
        pile.spawn(call, method)
    assert list(pile) == ["pong"] * 3
    spans = {span.name: ids(span) for span in exported.get_finished_spans()}
    for method in methods:
        trace_id, span_id, parent_id = spans[f"{method.service_name}.ping"]
        assert (trace_id, parent_id) == (TRACE_ID, SPAN_ID)           # each the child of the worker's span
        assert method.sent[0]["traceparent"] == f"00-{TRACE_ID}-{span_id}-01"
    assert worker_ctx.data["traceparent"] == TRACEPARENT


def test_a_proxy_without_a_worker_s_context_data_is_called_untraced(exported):
    method = SimpleNamespace(service_name="orgs", method_name="x", call_async=lambda: Reply(1))
    assert call(method) == 1 and exported.get_finished_spans() == ()


# ---- the RPC entrypoint and the consumers -----------------------------------------------------------------
class Message:
    """A received message as kombu's (compared by identity)."""

    def __init__(self, headers, payload, properties):
        self.headers, self.payload, self.properties = headers, payload, properties
        self.delivery_info = {"exchange": "change-events", "routing_key": "organization.renamed"}


def message(headers=None, payload=None, properties=None):
    return Message(headers or {}, payload, properties or {})


def entrypoint(cls, method_name, **attributes):
    point = cls.__new__(cls)
    point.container = SimpleNamespace(service_name="orgs")
    point.method_name = method_name
    for name, value in attributes.items():
        setattr(point, name, value)
    return point


class Replies:
    def handle_result(self, message, result, exc_info):
        return result, exc_info


def test_an_rpc_request_is_handled_in_a_server_span_child_of_the_caller_s(exported):
    rpc = entrypoint(Rpc, "rename_organization", rpc_consumer=Replies())
    request = message({"nameko.traceparent": TRACEPARENT, "nameko.request_id": "r1"},
                      properties={"correlation_id": "c1"})
    context_data = rpc.unpack_message_headers(request)
    assert context_data["request_id"] == "r1" and context_data["rpc_request_id"] == "c1"
    served = tracing.extract(context_data)
    assert served.trace_id == TRACE_ID and served.span_id != SPAN_ID     # the worker serves the new span
    rpc.handle_result(request, None, "ok", None)
    [server] = exported.get_finished_spans()
    assert (server.name, server.kind) == ("orgs.rename_organization", SpanKind.SERVER)
    assert ids(server) == (TRACE_ID, served.span_id, SPAN_ID) and server.attributes["rpc.method"] == \
        "rename_organization"


class Acks:
    def __init__(self):
        self.acked, self.requeued = [], []

    def ack_message(self, message):
        self.acked.append(message)

    def requeue_message(self, message):
        self.requeued.append(message)


def test_an_event_is_consumed_in_a_span_child_of_its_publication_or_of_its_command(exported):
    consumer = entrypoint(Consumer, "on_change_event", queue_consumer=Acks(), requeue_on_error=True,
                          queue=SimpleNamespace(name="members.change-events"))
    published = message({"nameko.traceparent": TRACEPARENT}, payload={"traceparent": "ignored"})
    context_data = consumer.unpack_message_headers(published)
    consumer.handle_result(published, None, None, None)
    # An event published by a relay that sent no header: the command's context from its envelope.
    other_span = "1111111111111111"
    unheaded = message(payload={"event_id": "e1", "traceparent": f"00-{TRACE_ID}-{other_span}-01"})
    consumer.unpack_message_headers(unheaded)
    consumer.handle_result(unheaded, None, None, (RuntimeError, RuntimeError("database away"), None))
    first, second = exported.get_finished_spans()
    assert (first.name, first.kind) == ("orgs.on_change_event", SpanKind.CONSUMER)
    assert ids(first) == (TRACE_ID, tracing.extract(context_data).span_id, SPAN_ID)
    assert first.attributes["messaging.rabbitmq.destination.routing_key"] == "organization.renamed"
    assert ids(second)[2] == other_span and second.status.status_code == StatusCode.ERROR
    assert consumer.queue_consumer.acked == [published] and consumer.queue_consumer.requeued == [unheaded]


# ---- events: the envelope, the relay's publication ---------------------------------------------------------
class Producer:
    def __init__(self):
        self.sent = []

    def publish(self, body, **options):
        self.sent.append((json.loads(body), options["headers"]))


def test_a_change_names_the_span_that_made_it_and_its_publication_is_that_span_s_child(exported):
    tracing.serve(tracing.parse(TRACEPARENT))
    event = change_event("organization.renamed", "update", "o1", {"id": "alice"}, "organization", "o1",
                         before={"name": "A"}, after={"name": "B"})
    tracing.serve(None)
    assert event["traceparent"] == TRACEPARENT and "tracestate" not in event
    untraced = change_event("invitation.expired", "update", "o1", {"id": "system"}, "invitation", "i1")
    assert "traceparent" not in untraced            # a timer's change: its publication starts a trace
    producer = Producer()
    rows = [SimpleNamespace(id=i, type=e["type"], event_id=e["event_id"], envelope=dict(e, request_id="r1"))
            for i, e in enumerate((event, untraced))]
    outbox._publish(producer, rows, "orgs")
    (_, headers), (_, root_headers) = producer.sent
    traced, root = exported.get_finished_spans()
    assert (traced.name, traced.kind) == ("publish organization.renamed", SpanKind.PRODUCER)
    assert ids(traced)[0::2] == (TRACE_ID, SPAN_ID)
    assert headers == {"nameko.traceparent": f"00-{TRACE_ID}-{ids(traced)[1]}-01", "nameko.request_id": "r1"}
    assert root.parent is None and root_headers["nameko.traceparent"].split("-")[1] == ids(root)[0]


def test_without_an_exporter_the_event_still_carries_the_trace_to_its_consumers():
    envelope = {"traceparent": TRACEPARENT}
    producer = Producer()
    outbox._publish(producer, [SimpleNamespace(id=1, type="a.b", event_id="e1", envelope=envelope)], "orgs")
    [(_, headers)] = producer.sent
    sent = tracing.parse(headers["nameko.traceparent"])
    assert sent.trace_id == TRACE_ID and sent.span_id != SPAN_ID and "nameko.request_id" not in headers


# ---- log lines ----------------------------------------------------------------------------------------------
def test_log_records_carry_the_ids_of_the_span_the_green_thread_serves():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    tracing.TraceIdFilter().filter(record)
    assert (record.trace_id, record.span_id) == ("-", "-")
    tracing.serve(tracing.parse(TRACEPARENT))
    tracing.TraceIdFilter().filter(record)
    assert (record.trace_id, record.span_id) == (TRACE_ID, SPAN_ID)


def test_with_debug_each_span_writes_a_line_with_its_own_ids(caplog):
    caplog.set_level(logging.DEBUG, logger="common.tracing")
    span = tracing.start("orgs", "orgs.rename", tracing.SERVER, tracing.parse(TRACEPARENT))
    span.end(NotFound("gone"))
    [record] = [r for r in caplog.records if r.name == "common.tracing"]
    tracing.TraceIdFilter().filter(record)
    assert record.getMessage().startswith("span server orgs.rename ") and record.getMessage().endswith("ok NotFound")
    assert (record.trace_id, record.span_id) == (TRACE_ID, span.context.span_id)


# ---- every way in is traced ----------------------------------------------------------------------------------
def test_every_entrypoint_of_every_process_is_one_that_makes_its_span():
    """A message or request can reach a worker only through an entrypoint that continues its trace (a
    timer starts none: what it changes starts a trace when published)."""
    from nameko.containers import ServiceContainer
    from nameko.timer import Timer

    from common.framework.batch_consume import BatchConsumer
    from common.framework.web import HttpEntrypoint
    from devtools.system import MODULES

    traced = (Rpc, Consumer, BatchConsumer, HttpEntrypoint)
    for module in MODULES.values():
        for service_cls in (c for c in vars(__import__(module, fromlist=["_"])).values()
                            if isinstance(c, type) and isinstance(getattr(c, "name", None), str)
                            and c.__module__ == module):
            container = ServiceContainer(service_cls, {"AMQP_URI": "memory://"})     # built, never started
            untraced = [f"{service_cls.name}.{e.method_name} ({type(e).__name__})" for e in container.entrypoints
                        if not isinstance(e, (*traced, Timer))]
            assert container.entrypoints and untraced == []


def test_a_collector_away_is_said_once_a_minute_not_per_retry():
    quiet = tracing.ExportFailuresQuiet()

    def record(name, level=logging.WARNING, message="Transient error, retrying"):
        return logging.LogRecord(name, level, __file__, 1, message, (), None)
    exporter = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
    first = record(exporter)
    assert quiet.filter(first)
    assert first.getMessage().endswith("(spans are dropped while this lasts; said once a minute)")
    assert not quiet.filter(record(exporter, logging.ERROR, "Failed to export spans batch"))
    assert not quiet.filter(record("opentelemetry.sdk._shared_internal", message="Queue full, dropping Span."))
    assert quiet.filter(record("nameko.containers", logging.ERROR))         # the others' records pass
    quiet._last_shown -= quiet.QUIET_SECONDS
    assert quiet.filter(record(exporter))
