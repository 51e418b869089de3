"""Queues of a process's own after a reconnection (common.framework.replies): a new queue under a new name,
and what was waiting on the old one told at once."""
from types import SimpleNamespace

import pytest
from eventlet.event import Event
from nameko.containers import ServiceContainer
from nameko.testing.utils import get_extension

from common.events import key_revocations_queue
from common.framework.replies import OwnQueueConsumer, OwnQueues, ReplyListener, ReplyLost, consume_own_queue
from common.rpc import service_proxy


class Caller:
    name = "caller"
    orgs = service_proxy("orgs")
    renewed = []

    @consume_own_queue(queue_factory=key_revocations_queue, on_renewed=lambda: Caller.renewed.append(True))
    def on_revoked(self, message):
        pass


@pytest.fixture
def container():
    return ServiceContainer(Caller, {"AMQP_URI": "memory://"})


def test_a_reply_queue_is_non_durable_and_renamed_with_the_calls_waiting_told_reply_lost(container):
    listener = get_extension(container, ReplyListener)
    listener.setup()
    first_name, first_key = listener.queue.name, listener.routing_key
    assert listener.queue.durable is False and listener.queue.queue_arguments == {"x-expires": 300000}
    assert first_name == f"rpc.reply-caller-{first_key}"
    waiting = listener.get_reply_event("correlation-1")
    answered = listener.get_reply_event("correlation-2")
    answered.send({"result": 1})

    listener.connection_renewed()

    with pytest.raises(ReplyLost):
        waiting.wait()
    assert answered.wait() == {"result": 1}
    assert listener.routing_key != first_key and listener.queue.name == f"rpc.reply-caller-{listener.routing_key}"
    assert listener._reply_events == {}


def test_a_consumer_of_its_own_queue_gets_a_new_one_and_says_so(container):
    consumer = get_extension(container, OwnQueueConsumer)
    before = consumer.queue.name
    Caller.renewed.clear()
    consumer.connection_renewed()
    assert consumer.queue.name != before and consumer.queue.name.startswith("gateway.api-key-revocations.")
    assert Caller.renewed == [True]


def test_only_a_reconnection_renews_the_queues():
    renewed = []

    class Provider:
        queue = key_revocations_queue()

        def connection_renewed(self):
            renewed.append(True)

    provider = Provider()
    class Queues(OwnQueues):              # without a container
        prefetch_count, accept = 10, ["json"]

    queues = Queues()
    queues._providers = {provider}
    queues._consumers = {}
    queues._consumers_ready = Event()
    made = []

    def consumer_cls(queues, callbacks, accept):
        made.append(queues[0].name)
        return SimpleNamespace(qos=lambda prefetch_count: None)

    queues.get_consumers(consumer_cls, channel=None)            # the first connection
    assert renewed == [] and made == [provider.queue.name]
    queues._consumers_ready.send(None)
    queues.get_consumers(consumer_cls, channel=None)            # connected again
    assert renewed == [True]


def test_a_reply_whose_acknowledgement_fails_still_reaches_its_caller_and_kills_nothing(container, caplog):
    # Upstream's acknowledgement raised out of the listener's thread and killed the container (the gateway,
    # when a broker node was killed).
    listener = get_extension(container, ReplyListener)
    listener.setup()
    waiting = listener.get_reply_event("correlation-1")

    def ack_message(message):
        raise ConnectionResetError(104, "Connection reset by peer")
    listener.queue_consumer.ack_message = ack_message
    message = SimpleNamespace(properties={"correlation_id": "correlation-1"}, channel=None)

    listener.handle_message({"result": 7}, message)

    assert waiting.wait() == {"result": 7}
    assert "caller.rpc_replies: a message could not be acknowledged" in caplog.text
