"""common.rpc: a reply that cannot be sent is dropped with a warning instead of killing the service, and
a call fails fast with a JSON-able 503 when the broker says nobody serves the service or is away."""
from types import SimpleNamespace

import pytest
from kombu.exceptions import OperationalError
from nameko.rpc import Rpc as NamekoRpc

from common import rpc
from common.commands import CREDENTIAL, query
from common.errors import ServiceUnavailable


class BrokenReplies:
    def handle_result(self, message, result, exc_info):
        raise OperationalError("[Errno 111] Connection refused")


def entrypoint(cls):
    point = cls(lambda: None)
    point.rpc_consumer = BrokenReplies()
    point.container = SimpleNamespace(service_name="orgs")
    point.method_name = "rename_organization"
    return point


def test_a_reply_that_cannot_be_sent_is_dropped_with_a_warning(caplog):
    assert entrypoint(rpc.Rpc).handle_result("message", None, {"ok": True}, None) == ({"ok": True}, None)
    assert "reply of orgs.rename_organization could not be sent and was dropped" in caplog.text


def test_nameko_s_own_entrypoint_would_raise_and_kill_the_container():
    with pytest.raises(OperationalError):
        entrypoint(NamekoRpc).handle_result("message", None, {"ok": True}, None)


class Method:
    service_name = "orgs"
    amqp_uri = "amqp://guest:guest@127.0.0.1:1/"

    def call_async(self, *args):
        raise AssertionError("not called when the answer is known")


@pytest.mark.parametrize("consumers, says", [(0, "The orgs service is not running."),
                                             (rpc.BROKER_UNREACHABLE, "The message broker is not reachable")])
def test_a_call_fails_fast_when_nobody_serves_it(monkeypatch, consumers, says):
    monkeypatch.setattr(rpc.consumer_watch, "consumers", lambda uri, service: consumers)
    with pytest.raises(ServiceUnavailable) as refused:
        rpc.call(Method())
    assert refused.value.message.startswith(says) and refused.value.code == "service_unavailable"


def test_the_broker_is_asked_at_most_once_a_second_per_service(monkeypatch):
    asked = []
    monkeypatch.setattr(rpc._ConsumerWatch, "_ask", staticmethod(lambda uri, service: asked.append(service) or 1))
    watch = rpc._ConsumerWatch()
    assert [watch.consumers("amqp://x", "orgs") for _ in range(5)] == [1] * 5
    watch.consumers("amqp://x", "members")
    assert asked == ["orgs", "members"]


def test_an_unreachable_broker_is_reported_as_such():
    assert rpc._ConsumerWatch._ask("amqp://guest:guest@127.0.0.1:1/", "orgs") == rpc.BROKER_UNREACHABLE


def test_an_rpc_with_the_wrong_arguments_is_refused_by_the_signature_built_once():
    from nameko.containers import ServiceContainer
    from nameko.exceptions import IncorrectSignature
    from nameko.testing.utils import get_extension

    class Service:
        name = "signatures"

        @query(CREDENTIAL)
        def add(self, caller, a, b=1):
            return a + b

    container = ServiceContainer(Service, {"AMQP_URI": "memory://"})      # built, never started
    entrypoint = get_extension(container, rpc.Rpc, method_name="add")
    entrypoint.check_signature((1,), {"b": 2})
    built = entrypoint._signature
    entrypoint.check_signature((1, 2), {})
    assert entrypoint._signature is built
    for args, kwargs in (((), {}), ((1, 2, 3), {}), ((1,), {"c": 3})):
        with pytest.raises(IncorrectSignature):
            entrypoint.check_signature(args, kwargs)
