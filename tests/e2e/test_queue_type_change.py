"""The one-time change of the queues' type (`python -m common.queues convert`, docs/operations.md "Quorum queues
and dead letters"): classic queues holding messages become quorum queues holding the same messages (bodies,
headers, ids), which a system started with BROKER_QUEUE_TYPE=quorum then consumes; a second run does nothing;
a queue with a consumer makes it refuse before changing anything; a service started with the other type
stops, naming the command. Its own RabbitMQ node (the session's runs classic queues)."""
import json
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest
from kombu import Connection, Consumer

from common import queues
from common.config import PROJECT_ROOT
from common.events import AUDIT_QUEUE, CHANGE_EXCHANGE, change_event
from devtools.system import Broker, free_broker_port, free_port
from gateway import tokens
from tests.conftest import RunningSystem
from tests.e2e.helpers import stored_entries, wait_for

QUORUM = {"x-queue-type": "quorum", "x-delivery-limit": 5, "x-dead-letter-exchange": "dead-letters",
          "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
EVENTS = 5


@pytest.fixture(scope="module")
def node():
    directory = tempfile.mkdtemp(prefix="orgplatform-rabbit-convert-")
    broker = Broker(directory, free_broker_port()).start()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(directory, ignore_errors=True)


def convert(broker, queue_type):
    """The command as an operator runs it: its exit code and what it printed."""
    env = {"PATH": "/usr/bin:/bin", "AMQP_URI": broker.amqp_uri, "BROKER_QUEUE_TYPE": queue_type,
           "BROKER_DELIVERY_LIMIT": "5", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, "-m", "common.queues", "convert"], env=env, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


def declared_as(broker, name, arguments):
    """Whether queue `name` exists declared with `arguments` (the broker refuses another declaration)."""
    with Connection(broker.amqp_uri) as connection:
        try:
            connection.channel().queue_declare(name, durable=True, auto_delete=False, arguments=arguments)
            return True
        except Exception:
            return False


def peek(broker, name):
    """The messages in queue `name` (body, message id, our header), left there."""
    with Connection(broker.amqp_uri) as connection:
        channel = connection.connection.channel()
        found = []
        while (message := channel.basic_get(name, no_ack=False)) is not None:
            found.append((message.body, message.properties.get("message_id"),
                          (message.properties.get("application_headers") or {}).get("x-test")))
        channel.close()
    return sorted(found)


def test_classic_queues_holding_messages_become_quorum_queues_holding_them(node, tmp_path):
    code, output = convert(node, "classic")         # the queues of a classic system, before the change
    assert code == 0, output
    assert "rpc-orgs: declared (classic)" in output and "audit.change-events: declared (classic)" in output
    org = str(uuid.uuid4())
    events = [change_event("organization.renamed", "update", org, {"id": "system"}, "organization", org,
                           before={"name": f"Name {n}"}, after={"name": f"Name {n + 1}"}) for n in range(EVENTS)]
    with Connection(node.amqp_uri, transport_options={"confirm_publish": True}) as connection:
        producer = connection.Producer()
        for n, event in enumerate(events):
            producer.publish(json.dumps(event), exchange=CHANGE_EXCHANGE, routing_key=event["type"],
                             content_type="application/json", delivery_mode=2, message_id=event["event_id"],
                             headers={"x-test": n})
    before = peek(node, AUDIT_QUEUE.name)
    assert len(before) == EVENTS

    # A consumer on a queue to convert: refused, nothing changed.
    with Connection(node.amqp_uri) as connection:
        consumer = Consumer(connection.channel(), [queues.rpc_queue("orgs")], callbacks=[lambda body, message: None])
        consumer.consume()
        code, output = convert(node, "quorum")
        assert code == 1 and "refused: rpc-orgs has 1 consumer(s)" in output, output
        consumer.cancel()
    assert declared_as(node, "rpc-orgs", {"x-queue-type": "classic"}) and peek(node, AUDIT_QUEUE.name) == before

    code, output = convert(node, "quorum")
    print(output)
    assert code == 0, output
    assert f"audit.change-events: converted to quorum, {EVENTS} message(s) kept" in output
    assert "rpc-orgs: converted to quorum" in output and "dead-letters: converted to quorum" in output
    for name in ["rpc-orgs", "rpc-members", "audit.change-events", "webhooks.change-events", "credits.change-events"]:
        assert declared_as(node, name, QUORUM), name
    assert declared_as(node, "dead-letters", {"x-queue-type": "quorum"})
    assert peek(node, AUDIT_QUEUE.name) == before               # the same bodies, ids and headers

    code, again = convert(node, "quorum")
    assert code == 0 and again.count("nothing to do") == 13 and "converted" not in again, again

    # A service started with the other type stops at once, naming the command.
    classic = RunningSystem(tmp_path / "classic", node.amqp_uri, free_port(),
                            dict(JWT_SECRET=tokens.secret(), BROKER_QUEUE_TYPE="classic"))
    classic.migrate()
    classic.start("orgs")
    try:
        assert classic.processes["orgs"].wait(timeout=60) != 0
    finally:
        classic.stop_all()
    log = (classic.log_dir / "orgs.log").read_text()
    assert "QueueDeclaredOtherwise" in log and "run `python -m common.queues convert`" in log, log[-3000:]

    # The system on quorum queues consumes what the classic ones held.
    system = RunningSystem(tmp_path / "quorum", node.amqp_uri, free_port(),
                           dict(JWT_SECRET=tokens.secret(), LOCALSTRIPE_PORT=str(free_port()),
                                BROKER_QUEUE_TYPE="quorum", BROKER_DELIVERY_LIMIT="5"))
    try:
        system.start_all()
        stored = wait_for(lambda: (lambda e: e if len(e) >= EVENTS else None)(stored_entries(system, org)),
                          message="the moved events in the trail")
        assert sorted(e["event_id"] for e in stored) == sorted(e["event_id"] for e in events)
    finally:
        system.stop_all()
