"""common.framework.consume and batch_consume: an acknowledgement the broker cannot take (it went away while
the reaction ran) is dropped with a warning, instead of killing the service's container as upstream's
consumers do; the message comes again once the broker is back, and the reaction is idempotent."""
from types import SimpleNamespace

import pytest
from nameko.messaging import Consumer as NamekoConsumer

from common.framework.batch_consume import BatchConsumer
from common.framework.consume import Consumer


class ResetQueueConsumer:
    def ack_message(self, message):
        raise ConnectionResetError(104, "Connection reset by peer")

    requeue_message = ack_message


def entrypoint(cls):
    point = cls.__new__(cls)
    point.queue_consumer = ResetQueueConsumer()
    point.container = SimpleNamespace(service_name="members")
    point.method_name = "on_change_event"
    point.requeue_on_error = False
    return point


def test_an_acknowledgement_lost_with_the_broker_is_a_warning_not_a_dead_service(caplog):
    assert entrypoint(Consumer).handle_result("message", None, "done", None) == ("done", None)
    batch = [("body 1", "m1"), ("body 2", "m2")]
    assert entrypoint(BatchConsumer).handle_batch_result(batch, [], None, "done", None) == ("done", None)
    assert caplog.text.count("members.on_change_event: a message could not be acknowledged") == 2


def test_nameko_s_own_consumer_would_raise_and_kill_the_container():
    with pytest.raises(ConnectionResetError):
        entrypoint(NamekoConsumer).handle_result("message", None, "done", None)


def test_a_connection_that_failed_to_write_is_shut_for_its_reader_too():
    import socket
    from types import SimpleNamespace

    from common.framework.consume import shut_down_connection_of

    ours, peer = socket.socketpair()
    try:
        transport = SimpleNamespace(sock=ours, connected=True)
        message = SimpleNamespace(channel=SimpleNamespace(connection=SimpleNamespace(transport=transport)))
        shut_down_connection_of(message)                 # still writable: left alone
        peer.sendall(b"x")
        assert ours.recv(1) == b"x"
        transport.connected = False                      # py-amqp says so after a failed write
        shut_down_connection_of(message)
        assert ours.recv(1) == b""                       # its reader sees the end at once
        shut_down_connection_of(message)                 # twice: nothing raised
    finally:
        ours.close()
        peer.close()


def test_an_acknowledgement_failed_on_a_dead_connection_makes_its_queue_consumer_connect_again():
    import socket

    from kombu.transport.pyamqp import Transport

    from common.framework.consume import QueueConsumer
    from common.framework.rpc import RpcConsumer

    # Every consumer of a service is on this one queue consumer (one connection per process).
    assert type(Consumer.queue_consumer) is type(BatchConsumer.queue_consumer) is type(RpcConsumer.queue_consumer) \
        is QueueConsumer
    ours, peer = socket.socketpair()
    try:
        queue_consumer = QueueConsumer.__new__(QueueConsumer)
        queue_consumer._consumers, queue_consumer._pending_remove_providers = {"provider": "consumer"}, {}
        point = entrypoint(Consumer)
        point.queue_consumer = queue_consumer
        queue_consumer.ack_message = ResetQueueConsumer().ack_message
        transport = SimpleNamespace(sock=ours, connected=True)
        message = SimpleNamespace(channel=SimpleNamespace(connection=SimpleNamespace(transport=transport)))

        point.handle_result(message, None, "done", None)      # the connection still writes: not it
        queue_consumer.on_iteration()

        transport.connected = False                           # py-amqp says so after a failed write
        point.handle_result(message, None, "done", None)
        with pytest.raises(ConnectionResetError) as lost:     # kombu's loop takes it as a lost connection
            queue_consumer.on_iteration()
        assert isinstance(lost.value, Transport.connection_errors)
        queue_consumer.on_iteration()                         # once: the new connection is left alone
    finally:
        ours.close()
        peer.close()
