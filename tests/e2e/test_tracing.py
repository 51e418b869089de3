"""One trace from the gateway through a service to the reactions to its event (SPEC §14, issue 30): a
system of its own (on its own virtual host of the session's broker, SQLite), every process exporting its
spans over OTLP/HTTP to a receiver this test runs (the real export path: the SDK's BatchSpanProcessor and
OTLP exporter, the protobuf decoded here), and writing JSON log lines at DEBUG (a line per span).

A client's `traceparent` is continued by the gateway's span, then by the RPC call's client and server
spans, by the outbox relay's publication of the event, and by each reaction's consumer span, all under
the client's trace id; the same trace id (and the request's id) is on the log lines of the gateway, the
service and the reactions. Without a valid `traceparent` the gateway starts a trace."""
import gzip
import json
import os
import secrets
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from devtools.system import System, free_port
from gateway import tokens
from tests.e2e.helpers import ok, wait_for

SERVER, CLIENT, PRODUCER, CONSUMER = (Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_PRODUCER,
                                      Span.SPAN_KIND_CONSUMER)


class OtlpReceiver:
    """An OTLP/HTTP trace receiver on loopback: every span exported to it, as a dict."""

    def __init__(self):
        self.spans, self.requests = [], 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.take(ExportTraceServiceRequest.FromString(body), self.path)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def take(self, request, path):
        assert path == "/v1/traces", path
        self.requests += 1
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append({
                        "service": attributes.get("service.name"), "name": span.name, "kind": span.kind,
                        "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                        "parent": span.parent_span_id.hex() or None, "status": span.status.code,
                        "attributes": {a.key: a.value for a in span.attributes}})

    def trace(self, trace_id):
        return [span for span in self.spans if span["trace_id"] == trace_id]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def add_vhost(broker, name):
    """A virtual host of the session's broker (and guest's rights on it): queues of their own, so this
    system and the session's never take each other's messages."""
    node = f"orgplatform-{broker.port}@localhost"
    # The node's cookie is under its HOME; the Erlang VM keeps the real clock (as scripts/rabbitmq.sh's: under
    # scripts/test_clock_ahead.sh's libfaketime it aborts).
    env = {name: value for name, value in os.environ.items() if name != "LD_PRELOAD"}
    env["HOME"] = str(broker.directory / "home")
    for command in (["add_vhost", name], ["set_permissions", "-p", name, "guest", ".*", ".*", ".*"]):
        subprocess.run(["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", node, *command], env=env, check=True,
                       capture_output=True, timeout=60)
    return f"{broker.amqp_uri}{name}"


@pytest.fixture(scope="module")
def traced(broker, tmp_path_factory):
    receiver = OtlpReceiver()
    env = {"JWT_SECRET": tokens.secret(), "LOCALSTRIPE_PORT": str(free_port()),
           "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100",
           "LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG"}
    system = System(tmp_path_factory.mktemp("system-traced"), add_vhost(broker, "traced"), free_port(), env)
    try:
        system.start_all()
        yield system, receiver
    finally:
        system.stop_all()
        receiver.stop()


def user(system):
    """A signed-in client of a brand-new user."""
    session = requests.Session()
    sub = f"traced-{secrets.token_hex(5)}"
    session.headers["Authorization"] = f"Bearer {tokens.mint(sub, f'{sub}@example.com', 'Traced')}"
    return session


def log_entries(system, name):
    """Every line of a process's log, each a JSON object (a line that is not one fails here)."""
    return [json.loads(line) for line in (system.log_dir / f"{name}.log").read_text().splitlines() if line]


def test_one_trace_id_from_the_gateway_through_a_service_to_its_reactions(traced):
    system, receiver = traced
    owner = user(system)
    # Signed in first (the traced request makes one organization), and the sign-in's own events (the personal
    # organization) audited: batched with the traced request's, they would give audit's batch their request id.
    signed_in = owner.get(f"{system.url}/v1/me", timeout=30)
    ok(signed_in)
    wait_for(lambda: any(e["request_id"] == signed_in.headers["X-Request-Id"] for e in log_entries(system, "audit")),
             message="the sign-in's events audited")
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    answer = owner.post(f"{system.url}/v1/organizations", json={"name": "Traced Clinic"}, timeout=30,
                        headers={"traceparent": f"00-{trace_id}-{client_span}-01", "tracestate": "vendor=1"})
    ok(answer, 201)
    request_id = answer.headers["X-Request-Id"]

    def one(kind, service, name, parent=None):
        found = [s for s in receiver.trace(trace_id) if (s["kind"], s["service"], s["name"]) == (kind, service, name)
                 and (parent is None or s["parent"] == parent["span_id"])]
        return found[0] if len(found) == 1 else None

    def chain():
        request = one(SERVER, "gateway", "POST /v1/organizations")
        call = request and one(CLIENT, "gateway", "orgs.create_organization", request)
        served = call and one(SERVER, "orgs", "orgs.create_organization", call)
        published = served and one(PRODUCER, "orgs", "publish organization.created", served)
        reactions = published and [one(CONSUMER, service, f"{service}.{method}", published) for service, method in
                                   (("members", "on_change_event"), ("credits", "on_change_event"),
                                    ("audit", "on_change_events"), ("webhooks", "on_change_events"))]
        return reactions and all(reactions) and (request, call, served, published, reactions)
    request, call, served, published, reactions = wait_for(chain, timeout=20, message="the trace's spans")
    assert request["parent"] == client_span                  # the client's span continued
    assert request["attributes"]["http.route"].string_value == "/v1/organizations"
    assert request["attributes"]["http.response.status_code"].int_value == 201
    assert served["attributes"]["rpc.method"].string_value == "create_organization"
    assert reactions[2]["attributes"]["messaging.batch.message_count"].int_value >= 1    # audit's batches
    assert {span["trace_id"] for span in (request, call, served, published, *reactions)} == {trace_id}

    # The same trace (and the request's id) on the log lines of the gateway, the service and a reaction.
    def logged(name):
        return [e for e in log_entries(system, name) if e["trace_id"] == trace_id]
    access = wait_for(lambda: [e for e in logged("gateway") if e["logger"] == "gateway.access"], message="access")
    assert access[0]["request_id"] == request_id and access[0]["span_id"] == request["span_id"]
    assert "POST /v1/organizations 201" in access[0]["message"]
    for name, span in (("orgs", served), ("members", reactions[0]), ("audit", reactions[2])):
        lines = wait_for(lambda name=name: logged(name), message=f"the trace in the {name} log")
        assert {(e["span_id"], e["request_id"]) for e in lines} >= {(span["span_id"], request_id)}, (name, lines)


def test_without_a_valid_traceparent_the_gateway_starts_a_trace_the_service_continues(traced):
    system, receiver = traced
    answer = user(system).get(f"{system.url}/v1/me", headers={"traceparent": "00-not-a-trace-01"}, timeout=30)
    ok(answer)

    def started():
        access = [e for e in log_entries(system, "gateway") if e["logger"] == "gateway.access"
                  and e["request_id"] == answer.headers["X-Request-Id"]]
        spans = access and receiver.trace(access[0]["trace_id"])
        kinds = {(s["kind"], s["service"]) for s in spans or ()}
        return spans if {(SERVER, "gateway"), (CLIENT, "gateway"), (SERVER, "orgs")} <= kinds else None
    spans = wait_for(started, timeout=20, message="the started trace's spans")
    [root] = [s for s in spans if s["kind"] == SERVER and s["service"] == "gateway"]
    assert root["name"] == "GET /v1/me" and root["parent"] is None
    assert all(s["parent"] for s in spans if s is not root)
