"""How durable queues are declared (common.queues): the arguments from the settings, and what the operations
route shows of a dead letter."""
from datetime import datetime
from types import SimpleNamespace

import amqp

from common import queues
from common.config import BrokerSettings

QUORUM = BrokerSettings(nodes=3, hosts=3, queue_type="quorum", delivery_limit=7)
CLASSIC = BrokerSettings(nodes=1, hosts=1, queue_type="classic", delivery_limit=20)


def test_quorum_queues_have_a_delivery_limit_and_dead_letter_at_least_once():
    assert queues.queue_arguments(QUORUM) == {
        "x-queue-type": "quorum", "x-delivery-limit": 7, "x-dead-letter-exchange": "dead-letters",
        "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


def test_classic_queues_are_declared_as_before():
    assert queues.queue_arguments(CLASSIC) == {}
    queue = queues.durable_queue("x", CLASSIC, routing_key="#")
    assert (queue.durable, queue.auto_delete, queue.exclusive, queue.queue_arguments) == (True, False, False, {})


def test_the_settings_choose_the_type(environment):
    environment.set(BROKER_QUEUE_TYPE="quorum", BROKER_DELIVERY_LIMIT="3")
    assert queues.queue_arguments()["x-delivery-limit"] == 3
    assert queues.durable_queue("q").queue_arguments["x-queue-type"] == "quorum"
    assert queues.rpc_queue("orgs").routing_key == "orgs.*" and queues.rpc_queue("orgs").name == "rpc-orgs"
    environment.set(BROKER_QUEUE_TYPE="classic")
    assert queues.queue_arguments() == {}


def test_the_dead_letter_queue_is_quorum_without_a_delivery_limit_in_quorum_mode():
    assert queues.dead_letter_queue(QUORUM).queue_arguments == {"x-queue-type": "quorum"}
    assert queues.dead_letter_queue(CLASSIC).queue_arguments == {}
    assert queues.dead_letter_queue(QUORUM).exchange.name == queues.DEAD_LETTER_EXCHANGE.name == "dead-letters"


def test_a_dead_letter_is_described_from_its_death_headers():
    # As RabbitMQ 3.10.8 dead-letters a message past a quorum queue's delivery limit (seen on a node).
    message = amqp.Message(b'{"event_id": "e-1", "type": "member.added"}', message_id="e-1",
                           application_headers={
                               "x-death": [{"count": 1, "reason": "delivery_limit", "queue": "credits.change-events",
                                            "time": datetime(2026, 12, 3, 11, 22, 16), "exchange": "change-events",
                                            "routing-keys": ["member.added"]}],
                               "x-first-death-queue": "credits.change-events",
                               "x-first-death-reason": "delivery_limit"})
    message.delivery_info = {"routing_key": "member.added"}
    assert queues.describe_dead_letter(message, QUORUM) == {
        "queue": "credits.change-events", "reason": "delivery_limit", "deaths": 1, "delivery_count": 8,
        "event_id": "e-1", "type": "member.added", "routing_key": "member.added",
        "dead_lettered_at": "2026-12-03T11:22:16.000000Z", "body": {"event_id": "e-1", "type": "member.added"}}


def test_a_dead_letter_that_is_not_json_is_shown_as_text():
    message = SimpleNamespace(body=b"\xffnot json", properties={}, delivery_info={"routing_key": "orgs.rename"})
    described = queues.describe_dead_letter(message, QUORUM)
    assert described["body"] == "\ufffdnot json" and described["type"] == "orgs.rename"
    assert described["queue"] is None and described["delivery_count"] is None and described["event_id"] is None
