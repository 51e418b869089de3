"""Deadlines of RPC requests (common.deadlines, issue 24): the caller sends its deadline as a header and as
the message's expiration; the RPC entrypoint drops a request past it unexecuted; a command's write
transaction commits only with the reply's margin left, else rolls back and answers 503. And the bulkhead
(common.rpc.Bulkheads): at most its share of calls in flight per service, the rest refused unsent."""
from types import SimpleNamespace

import pytest
from sqlalchemy import text

from common import deadlines, rpc
from common.db import Store
from common.errors import ServiceUnavailable
from common.framework.rpc import Rpc


# ---- the caller ---------------------------------------------------------------------------------------
class Reply:
    def result(self):
        return "done"


class Method:
    """A method proxy as common.rpc.call sees it: its worker's context data and its own publisher."""
    service_name, method_name = "orgs", "rename_organization"

    def __init__(self, context):
        self.worker_ctx = SimpleNamespace(data=context)
        self.publisher = SimpleNamespace(expiration=None)
        self.sent = None

    def call_async(self, *args):
        # What the request is published with: the headers are made from the context data at this moment.
        self.sent = (dict(self.worker_ctx.data), self.publisher.expiration)
        return Reply()


def test_a_call_carries_its_time_out_as_deadline_header_and_expiration(monkeypatch):
    monkeypatch.setattr(deadlines, "now", lambda: 1000.0)
    method = Method({"call_id_stack": ["gateway"]})
    assert rpc.call(method, timeout=10) == "done"
    headers, expiration = method.sent
    assert headers[deadlines.DEADLINE] == "1010.000" and expiration == pytest.approx(10)
    assert deadlines.DEADLINE not in method.worker_ctx.data        # the worker's own context is as it was


def test_a_call_made_for_a_request_keeps_within_that_request_s_deadline(monkeypatch):
    monkeypatch.setattr(deadlines, "now", lambda: 1000.0)
    method = Method({deadlines.DEADLINE: "1004.5"})                 # the request this worker serves
    rpc.call(method, timeout=10)
    headers, expiration = method.sent
    assert headers[deadlines.DEADLINE] == "1004.500" and expiration == pytest.approx(4.5)
    assert method.worker_ctx.data[deadlines.DEADLINE] == "1004.5"


def test_a_call_whose_service_is_gone_after_it_was_sent_is_an_unknown_outcome(monkeypatch):
    class Waiting(Method):
        amqp_uri = "amqp://broker/"

        def call_async(self, *args):
            answers.append(0)                   # from now on the broker says nobody consumes the queue
            return SimpleNamespace(result=lambda: __import__("eventlet").sleep(5))
    answers = [1]
    monkeypatch.setattr(rpc.consumer_watch, "consumers", lambda uri, service: answers[-1])
    monkeypatch.setattr(rpc, "CONSUMER_CHECK_SECONDS", 0.05)
    with pytest.raises(ServiceUnavailable) as refused:
        rpc.call(Waiting({}), timeout=2)
    assert refused.value.code == "outcome_unknown" and "may or may not have applied it" in refused.value.message


# ---- the entrypoint -----------------------------------------------------------------------------------
class Consumer:
    def __init__(self):
        self.acked = []
        self.queue_consumer = SimpleNamespace(ack_message=self.acked.append)


def entrypoint():
    point = Rpc(lambda: None)
    point.rpc_consumer = Consumer()
    point.container = SimpleNamespace(service_name="orgs", spawn_worker=lambda *a, **k: spawned.append(a))
    point.method_name = "rename_organization"
    point.check_signature = lambda args, kwargs: None
    point.unpack_message_headers = lambda message: {}
    return point


spawned = []


def test_a_request_past_its_deadline_is_dropped_unexecuted_and_acknowledged(caplog):
    spawned.clear()
    point = entrypoint()
    late = SimpleNamespace(headers={"nameko.deadline": deadlines.header_value(deadlines.now() - 3)})
    point.handle_message({"args": [], "kwargs": {}}, late)
    assert spawned == [] and point.rpc_consumer.acked == [late]
    assert "past its caller's deadline was dropped unexecuted" in caplog.text

    in_time = SimpleNamespace(headers={"nameko.deadline": deadlines.header_value(deadlines.now() + 5)})
    point.handle_message({"args": [], "kwargs": {}}, in_time)
    without = SimpleNamespace(headers={})                             # a caller that sends none
    point.handle_message({"args": [], "kwargs": {}}, without)
    assert len(spawned) == 2 and point.rpc_consumer.acked == [late]


def test_a_late_request_whose_acknowledgement_fails_is_dropped_without_killing_anything(caplog):
    # The broker's connection lost meanwhile: the broker delivers it again, and it is dropped again.
    spawned.clear()
    point = entrypoint()

    def ack_message(message):
        raise BrokenPipeError(32, "Broken pipe")
    point.rpc_consumer.queue_consumer = SimpleNamespace(ack_message=ack_message)
    late = SimpleNamespace(headers={"nameko.deadline": deadlines.header_value(deadlines.now() - 3)}, channel=None)
    point.handle_message({"args": [], "kwargs": {}}, late)
    assert spawned == []
    assert "orgs.rename_organization: a message could not be acknowledged" in caplog.text


# ---- the commit -----------------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'deadlines.db'}")
    with store.write() as session:
        session.execute(text("CREATE TABLE names (name TEXT)"))
    return store


def names(store):
    with store.read() as session:
        return [row[0] for row in session.execute(text("SELECT name FROM names"))]


def test_a_command_commits_only_with_the_reply_s_margin_left(store):
    with store.for_request("rpc-1", deadlines.now() + 5).write() as session:
        session.execute(text("INSERT INTO names VALUES ('in time')"))
    too_late = store.for_request("rpc-2", deadlines.now() + deadlines.DEADLINE_MARGIN_SECONDS / 2)
    with pytest.raises(ServiceUnavailable) as refused:
        with too_late.write() as session:
            session.execute(text("INSERT INTO names VALUES ('too late')"))
    assert refused.value.code == "service_unavailable" and "not applied" in refused.value.message
    with store.for_request("rpc-3").write() as session:             # no deadline: as before
        session.execute(text("INSERT INTO names VALUES ('no deadline')"))
    assert names(store) == ["in time", "no deadline"]


def test_a_deadline_that_is_not_a_number_counts_as_none():
    assert deadlines.of_context({deadlines.DEADLINE: "soon"}) is None
    assert deadlines.of_context(None) is None and not deadlines.passed(None)


# ---- the bulkhead -------------------------------------------------------------------------------------
def test_a_bulkhead_lets_its_share_through_refuses_the_rest_unsent_and_leaves_other_services_alone(monkeypatch):
    import eventlet

    heads = rpc.Bulkheads(limit=2)
    monkeypatch.setattr(rpc, "bulkheads", heads)
    release = eventlet.event.Event()

    class Hung(Method):
        amqp_uri = None

        def call_async(self, *args):
            sent.append(self.service_name)
            return SimpleNamespace(result=release.wait)
    sent = []
    holding = [eventlet.spawn(rpc.call, Hung({}), timeout=30) for _ in range(2)]
    eventlet.sleep(0)
    assert heads.full("orgs") and sent == ["orgs", "orgs"]
    with pytest.raises(ServiceUnavailable) as refused:
        with heads.entered("orgs", wait=0.05):
            pass
    assert refused.value.code == "service_unavailable" and "not keeping up" in refused.value.message
    members = Method({})
    members.service_name = "members"
    assert rpc.call(members) == "done" and not heads.full("members")      # another service: not held up
    release.send(None)
    for thread in holding:
        thread.wait()
    assert not heads.full("orgs")
