"""common.rpc: a call fails fast with a JSON-able 503 when the broker says nobody serves the service or is
away. (The RPC entrypoint's own tests: tests/unit/framework/test_rpc_entrypoint.py.)"""
import pytest

from common import rpc
from common.errors import ServiceUnavailable


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
