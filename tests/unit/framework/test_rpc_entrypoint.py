"""common.framework.rpc: a reply that cannot be sent is dropped with a warning instead of killing the
service; an RPC with the wrong arguments is refused by the signature built once."""
from types import SimpleNamespace

import pytest
from kombu.exceptions import OperationalError
from nameko.rpc import Rpc as NamekoRpc

from common.commands import CREDENTIAL, query
from common.framework.rpc import Rpc


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
    assert entrypoint(Rpc).handle_result("message", None, {"ok": True}, None) == ({"ok": True}, None)
    assert "reply of orgs.rename_organization could not be sent and was dropped" in caplog.text


def test_nameko_s_own_entrypoint_would_raise_and_kill_the_container():
    with pytest.raises(OperationalError):
        entrypoint(NamekoRpc).handle_result("message", None, {"ok": True}, None)


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
    entrypoint = get_extension(container, Rpc, method_name="add")
    entrypoint.check_signature((1,), {"b": 2})
    built = entrypoint._signature
    entrypoint.check_signature((1, 2), {})
    assert entrypoint._signature is built
    for args, kwargs in (((), {}), ((1, 2, 3), {}), ((1,), {"c": 3})):
        with pytest.raises(IncorrectSignature):
            entrypoint.check_signature(args, kwargs)
