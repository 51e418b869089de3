"""The upstream code that common.framework copies, overrides or relies on is the code it was written against.

Every entry below names an upstream function or method, the SHA-256 of its source as installed (whitespace
normalised), and what in this project to check again when it changes. An upgrade of Nameko, kombu, amqp,
eventlet or werkzeug that changes one of them fails here, naming the override; check it, then record the
new fingerprints printed by `python -m tests.unit.framework.test_upstream` (and the new pins below). The
installed versions are read from the environment (importlib.metadata) and must be requirements.txt's pins.
A method of common.framework (or of gateway/http.py's subclasses of it) that overrides an upstream one
without an entry here fails too.
"""
import hashlib
import importlib
import importlib.metadata
import inspect
import logging
import pkgutil
import re
import textwrap
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace

import pytest

from common import framework
from common.framework import log_filters, web

# The versions the overrides were written against (requirements.txt pins them exactly).
PINNED = {"nameko": "2.14.1", "kombu": "5.7.0", "amqp": "5.4.2", "eventlet": "0.41.3", "Werkzeug": "3.1.9"}

REQUIREMENTS = Path(__file__).resolve().parents[3] / "requirements.txt"

Upstream = namedtuple("Upstream", "name sha256 recheck")

UPSTREAM = [
    # ---- RPC (common/framework/rpc.py, common/framework/signature.py, common/rpc.py) ----------------------
    Upstream("nameko.rpc.RpcConsumer.setup",
             "055364c72ecd9d8a744a431638b409f4a960baf2fdc9702e3b70e60a4fdb7748",
             "common.framework.rpc.RpcConsumer.setup: a copy of it, with common.queues.durable_queue's Queue"),
    Upstream("nameko.rpc.RpcConsumer.handle_result",
             "d6c4437e766e61883dd4d3a19b55ed6cbfc779aadacef6835bbb305784f6d6ee",
             "common.framework.rpc.RpcConsumer.handle_result: a copy of it, with the unconfirmed _Responder"),
    Upstream("nameko.rpc.Responder.__init__",
             "afc8a071ba6fbb16d0a9966971d10126076a38ecfc2958f6bdf583a6701913d7",
             "common.framework.rpc.RpcConsumer.handle_result: builds a _Responder with these arguments"),
    Upstream("nameko.rpc.Responder.send_response",
             "74468dc3d4a910a4d211ab051a31bd6ddae4056cfa103a43c92d05180b6d4b78",
             "common.framework.rpc._Responder: the reply's publisher is `publisher_cls`(amqp_uri, ssl, login_method)"),
    Upstream("nameko.amqp.publish.Publisher.__init__",
             "28e63bfcf95904a2ca939d2d9eb4da711d7005cb3f82e05bd390a6af6b06a4db",
             "common.framework.rpc._UnconfirmedPublisher: the class attribute use_confirms = False is used"),
    Upstream("nameko.amqp.publish.Publisher.publish",
             "bc95a8a2b96ba722c24920c35cc92351deccfe93d013a0ae587372be276b2396",
             "common.framework.rpc._UnconfirmedPublisher: use_confirms decides if the broker's confirm is awaited; "
             "common.rpc._carrying: the publisher's `expiration` attribute is the message's (a request's deadline)"),
    Upstream("nameko.rpc.Rpc.handle_message",
             "4c370440d4272e012c5206abdd7378af38ae3cc8ba0208d488690d8009830e43",
             "common.framework.rpc.Rpc: wrapped (a request past its deadline dropped before any of it); "
             "check_signature (deny by default) runs before any worker is spawned, "
             "unpack_message_headers gives the worker's context (and starts the call's span), handle_result "
             "sends the reply (and ends it)"),
    Upstream("nameko.rpc.Rpc.handle_result",
             "8d123cfe3640d1e7e17bb4b9e526321e16a91d5543ab97cc55eb7a8d05431300",
             "common.framework.rpc.Rpc.handle_result: wraps it, dropping a reply that cannot be sent"),
    Upstream("nameko.messaging.HeaderDecoder.unpack_message_headers",
             "77c54fd00ee1a11b641821b0f11da5ef42e954b068f40a1c455cd4f1340a60b1",
             "common.framework.rpc.Rpc.unpack_message_headers and common.framework.consume.Consumer"
             ".unpack_message_headers (extend it: a span started from the `nameko.traceparent` header, stripped "
             "of its prefix) and common.framework.batch_consume.BatchConsumer._dispatch (each message's headers)"),
    Upstream("nameko.messaging.HeaderEncoder.get_message_headers",
             "017cc0f837be5a402c350974741a33ba5ae9a423505bb94051f3c2fcaef9124b",
             "common.tracing.outgoing: an RPC request's headers are the worker's context data (its traceparent) "
             "read when the request is published, each key prefixed `nameko.`"),
    Upstream("nameko.containers.WorkerContext.context_data",
             "a24ffb0b25833cc0e47118e4faf34d728410f6ec6aa606faaabc76974695e226",
             "common.tracing.outgoing: the context data sent is `data` as it is when the request is published"),
    Upstream("nameko.extensions.Entrypoint.check_signature",
             "a94fa0c55894484f7c5281e4dce4911f513d2ff56f28f2df808c8055d3e4491b",
             "common.framework.signature.SignatureOnce.check_signature: replaces it (same refusals, built once)"),
    Upstream("nameko.extensions.Entrypoint.decorator",
             "d3e87bd22660ebc67aaf2752d78b0170c1d4bdc5e6bfaf474184bc053144cb00",
             "common.rpc.rpc and gateway.http.http: the decorator is called with keyword arguments only"),
    Upstream("nameko.containers.ServiceContainer.spawn_worker",
             "ddc7c8948b80afab96aaec7df4c0022c6e9d534d94110c5edc802a186ac60715",
             "common.framework.batch_consume.BatchConsumer._dispatch and common.framework.web.HttpEntrypoint"
             ".handle_request: they spawn workers as upstream's entrypoints do"),
    Upstream("nameko.rpc.RpcProxy.__init__",
             "186a8e8f066a3861adb79d14644a89074d7ab41a15a412d7a90d9edd032af07c",
             "common.rpc.service_proxy: RpcProxy(name, use_confirms=False) reaches the request's publisher"),
    Upstream("nameko.rpc.MethodProxy.amqp_uri",
             "43dce757e4023104d9a9af3f0285bf1f3b8ab2899e5848751176e3fe4e3ff62d",
             "common.rpc.call: asks the broker at the proxy method's amqp_uri whether the service is consumed"),
    Upstream("nameko.rpc.MethodProxy.__init__",
             "1c3efaf6d323f01b98a3ba64f2afbb510df2ba1ada40a940d234f5605d73bc7f",
             "common.rpc._carrying: every MethodProxy makes its own publisher (setting its expiration touches "
             "no other call)"),
    Upstream("nameko.rpc.MethodProxy._call",
             "bc09e7abc92db30be0154d806683b00717fcff86c7621caf3400fc761ac47476",
             "common.rpc.call and service_proxy: UnknownService is raised only with publisher confirms; "
             "common.tracing.outgoing and common.rpc._carrying: the headers are made (get_message_headers) "
             "before anything yields, by the proxy's own publisher (made per MethodProxy: its expiration is "
             "this call's)"),
    # ---- @consume_batch and @consume (common/framework/batch_consume.py, consume.py) ----------------------
    Upstream("nameko.messaging.Consumer.setup",
             "456cb97abdd1365bbeae923b4cfcbc079cdcadd0bab47d5242fc1d245b150400",
             "common.framework.batch_consume.BatchConsumer.setup: extends it"),
    Upstream("nameko.messaging.Consumer.handle_message",
             "b797e7a611b7eb8e53f416c26b482d18d75fa5c769cef6f69e973d7ded4f0dc5",
             "common.framework.batch_consume.BatchConsumer.handle_message and _dispatch: replace it; "
             "common.framework.consume.Consumer: unpack_message_headers is called once per message, before "
             "its worker is spawned, and handle_result once it ran"),
    Upstream("nameko.messaging.Consumer.handle_result",
             "e9096c43885c48018441bbbbc88211c1d5e7a3bb9d8e6d073ce78307ce126077",
             "common.framework.batch_consume.BatchConsumer.handle_batch_result: replaces it for a batch; "
             "common.framework.consume.Consumer.handle_result: extends it (the message's span ends)"),
    Upstream("nameko.messaging.Consumer.handle_message_processed",
             "3f1eff6703b61f27f07954bde36f67116c5267aa713b635c8cc141d35b8dfb7a",
             "common.framework.batch_consume.BatchConsumer.handle_batch_result: calls it per message"),
    Upstream("nameko.messaging.QueueConsumer.handle_message",
             "758d20be43f8d5735269cc71c10860bf766fc7178fabcaaf913e3753318d6e2e",
             "common.framework.batch_consume: each message reaches handle_message in its own managed thread, so "
             "what arrived together is pending when _dispatch runs; BatchConsumer._run_alone spawns each message "
             "of a failed batch from a managed thread of its own in the same way"),
    Upstream("nameko.messaging.QueueConsumer.prefetch_count",
             "ccd8a8dfa1eaa5e087e03209c92b666db8239c0d942ddf6dea3a7e6470df5d99",
             "common.framework.batch_consume: a batch is at most the prefetch count, max_workers"),
    # ---- queues of a process's own, declared anew after a reconnection (common/framework/replies.py) -------
    Upstream("nameko.rpc.ReplyListener.setup",
             "00b93fa29cbb71cbcfcebd2a5ba68310a3a0286859766ed7414791758480c2aa",
             "common.framework.replies.ReplyListener.setup: upstream's queue name, exchange and arguments, "
             "declared non-durable; its routing_key is each call's reply_to (MethodProxy._call reads it per call)"),
    Upstream("nameko.messaging.QueueConsumer.on_iteration",
             "0338632c5cf386761f07aaacd990033761eff55b2ed52a10080ec440a433a59a",
             "common.framework.consume.QueueConsumer.on_iteration: called by kombu's consume loop at least once a "
             "second (drain_events' time-out); an error in its connection_errors raised there reconnects"),
    Upstream("nameko.rpc.ReplyListener.handle_message",
             "5c3213fc9256194f8e98a8d1961505ba7e05a1ba522a59d88dc3fc20ec71d1c3",
             "common.framework.replies.ReplyListener.handle_message: upstream's, its acknowledgement's failure caught; "
             "the reply sent to the event of its correlation_id"),
    Upstream("nameko.messaging.QueueConsumer.get_consumers",
             "c64c79c9fb67f4823f10d729e0d34be2c51d8a9399912e7bfed59d10086089b8",
             "common.framework.replies.OwnQueues: called after every (re)connection, reads provider.queue"),
    Upstream("nameko.messaging.Consumer.__init__",
             "25cdedc9d235f2c2ef240d04eab2d4d64c2ee484076bf80269dafac3b94e9bd3",
             "common.framework.replies.OwnQueueConsumer: (queue, requeue_on_error, **kwargs), queue kept as .queue"),
    # ---- broker outage logged once (common/framework/log_filters.py) -------------------------------------
    Upstream("nameko.messaging.QueueConsumer.on_connection_error",
             "5a829886e37de3fa09574837a944bfc6af39979164153c7fd460ee16c1f03f90",
             "common.framework.log_filters.BrokerOutageOnce: matches its line 'Error connecting to broker'; "
             "common.framework.broker_state: wraps it on the class (the broker connection down)"),
    # ---- the broker connection's state (common/framework/broker_state.py) ---------------------------------
    Upstream("nameko.messaging.QueueConsumer.on_consume_ready",
             "95d3947e4deda026001770f074139be8c6af2713e8e5ebb5aff4bfe830edafd2",
             "common.framework.broker_state: wraps it on the class (the broker connection up)"),
    Upstream("kombu.mixins.ConsumerMixin.consumer_context",
             "64067136f44c52c79d76c79554e41d5bde55def319c74af9fc2fea1a9b5b7357",
             "common.framework.broker_state: on_consume_ready is called after every (re)connection"),
    Upstream("kombu.mixins.ConsumerMixin.establish_connection",
             "f439a22b3a65e86d46505bcb404af3dc9bbf4f7cfbc4d6503c533596b618d3a5",
             "common.framework.broker_state: on_connection_error is the errback of every failed (re)connection"),
    Upstream("kombu.mixins.ConsumerMixin.run",
             "26285be34de03483ff5d8fa1afb66b3784b6698cf903b4b4e83ca82ac7a87253",
             "common.framework.log_filters.BrokerOutageOnce: matches W_CONN_LOST, logged here with a traceback"),
    # ---- HTTP (common/framework/web.py, gateway/http.py) -------------------------------------------------
    Upstream("nameko.web.server.HttpOnlyProtocol.finish",
             "94bcc7e10c3a518482b0a8b35e6eb82aa041e90521c17e4b3b42a2b42e9995bb",
             "common.framework.web.JsonRefusalsProtocol: subclasses HttpOnlyProtocol"),
    Upstream("eventlet.wsgi.HttpProtocol.setup",
             "2bd0097582fa52ac6cb05fe4d6fdfe6dd0b2a998a90c9db10251973cd99a7406",
             "common.framework.web.JsonRefusalsProtocol.setup: extends it, wrapping the wfile it makes"),
    Upstream("eventlet.wsgi.HttpProtocol.handle_one_request",
             "beea6f3e7b6187490147d3fe2f54a21bfc64c45efcde73f3ce90d2f905e9736f",
             "common.framework.web.EVENTLET_REFUSALS: the status lines eventlet writes for its own refusals"),
    Upstream("eventlet.wsgi.HttpProtocol.get_environ",
             "49fdd8381f488dceaef3d8aba395452e326faf438e8b4ad8c4f897e2cf328b36",
             "common.framework.web.WsgiApp.route: eventlet de-chunks a body without setting wsgi.input_terminated"),
    Upstream("werkzeug.wsgi.get_input_stream",
             "65d500f7f3733d8c8f9c581983f882f3938ce0a6d3583c837920cf3692cd333b",
             "common.framework.web.WsgiApp.route: a chunked body is read once wsgi.input_terminated is set"),
    Upstream("nameko.web.server.WebServer.process_request",
             "6e5a4280edac36634fe6ba61e0318c5ff9cae1bf5d0f683c30c0fcb6f16654ab",
             "common.framework.web.WebServer.process_request: wraps it, each connection known to Draining while "
             "it is open"),
    Upstream("nameko.web.server.WebServer.stop",
             "013900cd11659d902253bdc47d1176174ed4dfc5ea91de7b7f39180939bbfd07",
             "common.framework.web.WebServer._stop_accepting: does its first steps (_is_accepting, _gt, _sock) "
             "early, for a graceful stop"),
    Upstream("eventlet.wsgi.HttpProtocol.handle_one_response",
             "da3b5481ec3e8f903fd1462d3a512774c89d4c5d40b484e2e5773c6b917afd09",
             "common.framework.web.JsonRefusalsProtocol.handle_one_response: wraps it (a request counted while "
             "answered); close_connection set before it makes the answer the connection's last"),
    Upstream("eventlet.wsgi.HttpProtocol.handle",
             "b4247cafb31cb9646cbd95412fcd3cf2c3cb0b3f76a4f3d9b186541a76a0eecc",
             "common.framework.web.Draining: the connection's loop ends on close_connection, or when the read "
             "of the next request line ends (the socket shut down)"),
    Upstream("nameko.web.handlers.HttpRequestHandler.stop",
             "f670099d233a712621caf34a15fdbf59026a706f9ffa34f93be2d200621939d3",
             "common.framework.web.HttpEntrypoint.stop: drains the server first, then calls it"),
    Upstream("nameko.containers.ServiceContainer.stop",
             "5416b786c5aa34c283b23657a936bd9d8049342880304145d77e46511505a615",
             "common.framework.web.HttpEntrypoint.stop: the entrypoints stop first, while workers and their "
             "dependencies still run, so draining there still answers requests"),
    Upstream("nameko.web.server.WebServer.start",
             "4f0c8acba27837e25288274c434b7aeff8302f23176f6a2003a47a2dfdd882a2",
             "common.framework.web.WebServer: start builds the server from get_wsgi_server(sock, get_wsgi_app())"),
    Upstream("nameko.web.server.WebServer.get_wsgi_app",
             "348ebc83e14485c3ca61d42cce39196cf891d5b2ecdc738d8735bb0c3b0773ea",
             "common.framework.web.WebServer.get_wsgi_app: replaces it (wsgi_app_cls)"),
    Upstream("nameko.web.server.WebServer.get_wsgi_server",
             "9cab79234d2d31a4495b7813671b6857d2e59ea15bf71f8321bee26953c41ba5",
             "common.framework.web.WebServer.get_wsgi_server: calls it with JsonRefusalsProtocol"),
    Upstream("nameko.web.server.WsgiApp.__init__",
             "0200b97fb5959200facec422dfb9d4ec021c6eb55bbeb8d8380385b2b9272b0e",
             "common.framework.web.WsgiApp: route() uses the url_map it builds"),
    Upstream("nameko.web.server.WsgiApp.__call__",
             "8fcb8e6163f7f7c5c6f70d51f31a7c0c7fc25390ded7bdbead5a35a569259ed7",
             "common.framework.web.WsgiApp.__call__, respond and route: replace it"),
    Upstream("nameko.web.handlers.HttpRequestHandler.handle_request",
             "d5fde881b3490dd8245e51eb6aaac9a03ae826775eefd805ba08b2791477a48b",
             "common.framework.web.HttpEntrypoint.handle_request: a copy of it, with worker_context added"),
    Upstream("nameko.web.handlers.HttpRequestHandler.handle_result",
             "e18b8fdf61b887c2d5ae10132b66b210d4109a37af26db53d924d85a582ad893",
             "common.framework.web.HttpEntrypoint.handle_request: hands it to the worker as upstream's does"),
    Upstream("nameko.web.handlers.HttpRequestHandler.__init__",
             "c2227f2dca923bdf1380c4cf1f55730b58772e01412f030a8210e1113bbf071e",
             "gateway.http.JsonHttpEntrypoint.__init__: extends it (public)"),
    Upstream("nameko.web.handlers.HttpRequestHandler.get_entrypoint_parameters",
             "2a21851018bd5aac458fef9ca6c5b8d8ce63cc25be14152dbba0e8db4135e7dc",
             "gateway.http.JsonHttpEntrypoint.get_entrypoint_parameters: extends it (input checks)"),
    Upstream("nameko.web.handlers.HttpRequestHandler.response_from_exception",
             "0db53b8c0d419581c6632e73cd7d6d39c091105c1ad40369696fda19b9d23a65",
             "gateway.http.JsonHttpEntrypoint.response_from_exception: replaces it (JSON errors)"),
    # ---- errors across RPC (common/errors.py) ------------------------------------------------------------
    Upstream("nameko.exceptions.serialize",
             "07a7d9044aa131ce386cd2ec0c2234614b75b4076cb66b2bcbcb7185e5d66027",
             "common.errors.AppError: its four args travel stringified (safe_for_serialization)"),
    Upstream("nameko.exceptions.deserialize",
             "1ac8f237446983bac3dff91b88782950cf787a2d0522ea425b7dcb7251a6da7d",
             "common.errors: a registered AppError is rebuilt from its args on the caller's side"),
]


def resolve(name):
    """The object a dotted name names: the longest importable module, then attributes (a property's getter)."""
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
        return obj.fget if isinstance(obj, property) else obj
    raise ImportError(name)


def fingerprint(obj):
    """SHA-256 of the object's source, dedented, each line's trailing whitespace and every blank line dropped."""
    source = textwrap.dedent(inspect.getsource(obj))
    lines = [line.rstrip() for line in source.splitlines() if line.strip()]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def installed():
    return ", ".join(f"{name} {importlib.metadata.version(name)}" for name in PINNED)


@pytest.mark.parametrize("name", PINNED)
def test_the_installed_version_is_the_one_the_overrides_were_written_for(name):
    version = importlib.metadata.version(name)
    assert version == PINNED[name], (
        f"{name} {version} is installed; common.framework was written against {PINNED[name]}. Check every "
        f"override of common/framework/ against it (this file's fingerprints say which changed), then update "
        f"PINNED here and requirements.txt.")


def test_requirements_pin_exactly_these_versions():
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", REQUIREMENTS.read_text(), re.MULTILINE))
    pins = {name.lower(): version for name, version in pins.items()}
    assert {name: pins.get(name.lower()) for name in PINNED} == PINNED, \
        "requirements.txt and PINNED here name other versions: the overrides were checked against PINNED"


@pytest.mark.parametrize("upstream", UPSTREAM, ids=[upstream.name for upstream in UPSTREAM])
def test_the_upstream_source_is_the_one_the_override_was_written_for(upstream):
    assert fingerprint(resolve(upstream.name)) == upstream.sha256, (
        f"{upstream.name} changed upstream (installed: {installed()}). Re-check {upstream.recheck}; then record "
        f"its new fingerprint (python -m tests.unit.framework.test_upstream).")


UPSTREAM_PACKAGES = {"nameko", "kombu", "amqp", "eventlet", "werkzeug"}
# Where the project's subclasses of upstream classes live: the package, and the gateway's subclasses of it.
OVERRIDING_MODULES = [f"common.framework.{module.name}" for module in pkgutil.iter_modules(framework.__path__)]
OVERRIDING_MODULES.append("gateway.http")


def _upstream(cls):
    return cls.__module__.split(".")[0] in UPSTREAM_PACKAGES


def overridden():
    """(upstream method, project method) for every method of a project class that one of its upstream bases
    also defines."""
    for module in map(importlib.import_module, OVERRIDING_MODULES):
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__ or not any(map(_upstream, cls.__mro__)):
                continue
            mro = cls.__mro__
            for index, own in enumerate(mro):
                if _upstream(own) or own is object:
                    continue
                for name, value in vars(own).items():
                    if not inspect.isfunction(value):
                        continue
                    base = next((base for base in mro[index + 1:] if _upstream(base) and name in vars(base)), None)
                    if base is not None:
                        yield f"{base.__module__}.{base.__qualname__}.{name}", f"{own.__module__}.{own.__qualname__}"


def test_every_upstream_method_the_project_overrides_has_a_fingerprint_here():
    fingerprinted = {upstream.name for upstream in UPSTREAM}
    missing = {f"{upstream} (overridden in {own})" for upstream, own in overridden() if upstream not in fingerprinted}
    assert not missing, f"add these to UPSTREAM, with what to re-check when they change: {sorted(missing)}"


# ---- constants and messages the overrides match, checked by value --------------------------------------
def test_rpc_queues_are_named_as_common_rpc_asks_the_broker_for_them():
    from nameko.rpc import RPC_QUEUE_TEMPLATE
    assert RPC_QUEUE_TEMPLATE.format("orgs") == "rpc-orgs", "re-check common.rpc._ConsumerWatch._ask"


def test_replies_are_published_by_the_responder_s_publisher_class_with_confirms_by_default():
    from nameko.amqp.publish import Publisher
    from nameko.rpc import Responder

    from common.framework.rpc import _Responder, _UnconfirmedPublisher
    assert Responder.publisher_cls is Publisher and Publisher.use_confirms is True
    assert _Responder.publisher_cls is _UnconfirmedPublisher and _UnconfirmedPublisher.use_confirms is False


def test_eventlet_refuses_an_over_long_url_with_the_status_line_matched():
    from eventlet.wsgi import RESPONSE_414
    assert any(RESPONSE_414.startswith(prefix) for prefix in web.EVENTLET_REFUSALS), \
        "re-check common.framework.web.EVENTLET_REFUSALS"


def test_the_broker_outage_lines_of_nameko_and_kombu_are_the_ones_the_filter_matches(caplog):
    from kombu.mixins import W_CONN_LOST
    from nameko.messaging import QueueConsumer

    assert W_CONN_LOST.startswith("Connection to broker lost"), "re-check common.framework.log_filters"
    with caplog.at_level(logging.WARNING, logger="nameko.messaging"):
        QueueConsumer.on_connection_error(SimpleNamespace(amqp_uri="amqp://guest:guest@127.0.0.1:1/"),
                                          ConnectionRefusedError(111, "Connection refused"), 2)
    [record] = caplog.records
    assert log_filters.BrokerOutageOnce().filter(record)
    assert record.getMessage().endswith("Retrying quietly until it is back."), "re-check common.framework.log_filters"


if __name__ == "__main__":
    print(f"# {installed()}")
    for upstream in UPSTREAM:
        print(f'{upstream.name}: "{fingerprint(resolve(upstream.name))}"')
