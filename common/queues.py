"""How every durable queue is declared (each service's RPC queue `rpc-<service>`, each event queue of
common.events, the dead-letter queue), in this one place, from the settings (BROKER_QUEUE_TYPE,
BROKER_DELIVERY_LIMIT; docs/operations.md "Quorum queues and dead letters").

- quorum: `x-queue-type: quorum`, replicated on a cluster; a message delivered `delivery_limit` + 1 times
  without being acknowledged (a reaction that raises requeues it; a consumer that dies with it unacked
  returns it) is dead-lettered, at least once (`x-dead-letter-strategy: at-least-once`, which RabbitMQ
  takes only with `x-overflow: reject-publish`: checked on 3.10.8), through the `dead-letters` exchange
  into the `dead-letters` queue, instead of looping for ever. While the dead-letter exchange cannot take it,
  the broker keeps the message in its queue: nothing is dropped. The dead-letter queue is quorum itself,
  with no delivery limit. An RPC request whose deadline passed while it waited (its AMQP expiration) is
  dead-lettered too, reason `expired`: its caller was answered 503 long ago, it can be purged.
- classic: the declaration of before (durable, no arguments: a queue declared otherwise than it exists is
  refused, PRECONDITION_FAILED), so nothing dead-letters; the dead-letter queue exists, empty.

Reply queues (Nameko's RPC replies) and the gateway's queues of key revocations stay classic and
non-durable: a quorum queue cannot be exclusive, auto-delete or non-durable.

A queue's type (or its delivery limit) cannot change in place: with the services stopped,
`python -m common.queues convert` moves each queue that differs from the settings aside, declares it again,
and moves its messages back (`convert`, below). A service started against queues of the other type says so
and names the command (`check_declared`, called by common.framework.rpc.RpcConsumer.setup).
"""
import argparse
import json
import logging
import sys
from datetime import UTC

import amqp
from amqp.exceptions import NotFound, PreconditionFailed
from kombu import Connection, Exchange, Queue

from common.config import SERVICES, settings
from common.timeutil import iso

log = logging.getLogger(__name__)

DEAD_LETTER_EXCHANGE = Exchange("dead-letters", type="fanout", durable=True)
DEAD_LETTER_QUEUE_NAME = "dead-letters"
CONVERT_COMMAND = "python -m common.queues convert"
_TEMPORARY_SUFFIX = ".converting"


def queue_arguments(broker=None):
    """The arguments of every durable queue but the dead-letter queue, from `broker` (settings().broker)."""
    broker = broker or settings().broker
    if broker.queue_type == "classic":
        return {}
    return {"x-queue-type": "quorum", "x-delivery-limit": broker.delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name,
            "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


def durable_queue(name, broker=None, **kwargs):
    """A kombu Queue declared as the settings say (kwargs: exchange, routing_key, bindings...)."""
    return Queue(name, durable=True, auto_delete=False, exclusive=False,
                 queue_arguments=queue_arguments(broker), **kwargs)


def dead_letter_queue(broker=None):
    """Where dead letters end: bound to the dead-letter exchange; quorum (no delivery limit) in quorum mode."""
    broker = broker or settings().broker
    arguments = {"x-queue-type": "quorum"} if broker.queue_type == "quorum" else {}
    return Queue(DEAD_LETTER_QUEUE_NAME, exchange=DEAD_LETTER_EXCHANGE, durable=True, auto_delete=False,
                 exclusive=False, queue_arguments=arguments)


DEAD_LETTER_QUEUE = dead_letter_queue()


def rpc_queue(service, broker=None):
    """The queue Nameko's RPC consumer of `service` takes requests from (nameko.rpc.RpcConsumer.setup's name,
    exchange and routing key)."""
    from nameko.rpc import RPC_QUEUE_TEMPLATE, get_rpc_exchange
    return durable_queue(RPC_QUEUE_TEMPLATE.format(service), broker, exchange=get_rpc_exchange({}),
                         routing_key=f"{service}.*")


def every_durable_queue():
    """Our durable queues as this process's settings declare them: RPC, events, the dead letters."""
    from common.events import CONSUMER_QUEUES
    return [*(rpc_queue(service) for service in SERVICES), *CONSUMER_QUEUES, DEAD_LETTER_QUEUE]


class QueueDeclaredOtherwise(RuntimeError):
    """A queue exists on the broker with another type or other arguments than the settings say."""


def check_declared(amqp_uri, queues, timeout=5):
    """At a service's start: declare the dead letters' exchange and queue, then `queues`. A queue of the other
    type (or another delivery limit) raises QueueDeclaredOtherwise naming the conversion command, instead of
    the consumer failing later on PRECONDITION_FAILED. A broker that cannot be reached is left to the
    consumers, which declare everything once connected."""
    try:
        with Connection(amqp_uri, connect_timeout=timeout) as connection:
            connection.ensure_connection(max_retries=1)
            for queue in [DEAD_LETTER_QUEUE, *queues]:
                try:
                    queue(connection.channel()).declare()
                except PreconditionFailed as refusal:
                    raise QueueDeclaredOtherwise(mismatch_message(queue.name, refusal)) from None
    except QueueDeclaredOtherwise:
        raise
    except Exception as error:      # unreachable: the consumers declare once it is back
        log.warning("could not check the queues' declarations (%s); the consumers will declare them", error)


def mismatch_message(name, refusal):
    wanted = settings().broker.queue_type
    return (f"queue {name!r} exists on the broker declared otherwise than BROKER_QUEUE_TYPE={wanted} "
            f"BROKER_DELIVERY_LIMIT={settings().broker.delivery_limit} say ({refusal}). A queue's type cannot "
            f"change in place: stop every service, run `{CONVERT_COMMAND}` with these settings once, then "
            "start them again (docs/operations.md, \"Quorum queues and dead letters\").")


# ---- reading the dead letters (GET /v1/operations/dead-letters) ------------------------------------------
def peek_dead_letters(amqp_uri, limit, timeout=5):
    """(how many messages the dead-letter queue holds, up to `limit` of them as dicts), read without
    consuming them: fetched unacknowledged, then the channel is closed and the broker puts them back.
    Two readers at the same moment each see those the other is not holding. Raises what kombu and amqp
    raise when the broker cannot be reached (eventlet.Timeout after `timeout` under eventlet)."""
    with Connection(amqp_uri, connect_timeout=timeout) as kombu_connection:
        kombu_connection.ensure_connection(max_retries=1)
        channel = kombu_connection.connection.channel()
        try:
            _, total, _ = channel.queue_declare(DEAD_LETTER_QUEUE_NAME, passive=True)
        except NotFound:
            return 0, []
        letters = []
        while len(letters) < limit and (message := channel.basic_get(DEAD_LETTER_QUEUE_NAME, no_ack=False)):
            letters.append(describe_dead_letter(message))
        channel.close()                 # every message fetched goes back, unacknowledged
    return total, letters


def describe_dead_letter(message, broker=None):
    """What the operations route shows of a dead-lettered message (an amqp.Message)."""
    broker = broker or settings().broker
    properties = message.properties or {}
    headers = properties.get("application_headers") or {}
    deaths = headers.get("x-death") or [{}]
    first = deaths[-1]          # x-death is newest first
    routing_keys = first.get("routing-keys") or [message.delivery_info.get("routing_key")]
    raw = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", errors="replace")
    reason = headers.get("x-first-death-reason") or first.get("reason")
    when = first.get("time")
    return {
        "queue": headers.get("x-first-death-queue") or first.get("queue"),
        "reason": reason,
        "deaths": sum(int(death.get("count") or 0) for death in deaths),
        "delivery_count": broker.delivery_limit + 1 if reason == "delivery_limit" else None,
        "event_id": properties.get("message_id") or (body.get("event_id") if isinstance(body, dict) else None),
        "type": (body.get("type") if isinstance(body, dict) and isinstance(body.get("type"), str) else None)
        or routing_keys[0],
        "routing_key": routing_keys[0],
        "dead_lettered_at": iso(when.replace(tzinfo=UTC)) if hasattr(when, "replace") else None,
        "body": body,
    }


# ---- the one-time conversion ---------------------------------------------------------------------------
def _declared_as_wanted(connection, queue):
    """True if `queue` exists as declared, False if it exists otherwise, None if it does not exist.
    Asked with a declaration of the wanted arguments on a channel of its own (a refusal closes it)."""
    if _counts(connection, queue.name) is None:
        return None
    channel = connection.channel()
    arguments = queue.queue_arguments or {"x-queue-type": "classic"}
    try:
        channel.queue_declare(queue.name, durable=True, auto_delete=False, arguments=arguments)
    except PreconditionFailed:
        return False
    channel.close()
    return True


def _counts(connection, name):
    """(messages, consumers) of an existing queue, or None."""
    channel = connection.channel()
    try:
        _, messages, consumers = channel.queue_declare(name, passive=True)
    except NotFound:
        return None
    channel.close()
    return messages, consumers


def _move(connection, source, target):
    """Every message of queue `source` into queue `target` (the default exchange), body, properties and
    headers as they are, each acknowledged at the source once the broker confirmed it at the target.
    Returns how many."""
    channel = connection.channel()
    moved = 0
    while (message := channel.basic_get(source, no_ack=False)) is not None:
        channel.basic_publish_confirm(amqp.Message(message.body, **message.properties), exchange="",
                                      routing_key=target, confirm_timeout=30)
        channel.basic_ack(message.delivery_tag)
        moved += 1
    channel.close()
    return moved


def _move_all(connection, source, target):
    """_move until `source` is empty and deleted (a message published meanwhile is moved too)."""
    moved = _move(connection, source, target)
    while not _delete_empty(connection, source):
        moved += _move(connection, source, target)
    return moved


def _delete_empty(connection, name):
    """Delete queue `name` if it is empty; False if messages arrived meanwhile (nothing deleted). Asked with
    a count, then a plain delete: quorum queues refuse `if-empty` (NOT_IMPLEMENTED, closing the connection),
    and nothing publishes while the services are stopped."""
    counts = _counts(connection, name)
    if counts is None:
        return True
    if counts[0]:
        return False
    channel = connection.channel()
    channel.queue_delete(name)
    channel.close()
    return True


def convert(amqp_uri, queues=None, out=print):
    """Declare every queue in `queues` (every_durable_queue()) as the settings say, moving the messages of one
    that exists otherwise aside (into `<name>.converting`, a classic queue), deleting it, declaring it anew
    (with its bindings) and moving them back. Refuses, before touching anything, while a queue to convert
    has consumers. Idempotent, and resumable: a `.converting` queue left by an interrupted run is emptied
    into its queue. Returns 0, or 1 when it refused."""
    queues = every_durable_queue() if queues is None else queues
    wanted = settings().broker.queue_type
    with Connection(amqp_uri) as kombu_connection:
        kombu_connection.ensure_connection(max_retries=3)
        connection = kombu_connection.connection      # the py-amqp connection: channels of our own
        plan = {queue.name: _declared_as_wanted(connection, queue) for queue in queues}
        busy = [(name, counts[1]) for name, state in plan.items() if state is False
                and (counts := _counts(connection, name)) and counts[1]]
        if busy:
            for name, consumers in busy:
                out(f"refused: {name} has {consumers} consumer(s): stop every service and gateway first; "
                    "nothing was changed")
            return 1
        for queue in queues:
            name, temporary = queue.name, queue.name + _TEMPORARY_SUFFIX
            state = plan[name]
            if state is False:
                channel = connection.channel()
                channel.queue_declare(temporary, durable=True, auto_delete=False)
                channel.close()
                _move_all(connection, name, temporary)      # ... and the queue deleted
            queue(kombu_connection.default_channel).declare()        # with its exchange and bindings
            back = _move_all(connection, temporary, name) if _counts(connection, temporary) is not None else None
            if state is False:
                out(f"{name}: converted to {wanted}, {back} message(s) kept (moved through {temporary})")
            elif back is not None:
                out(f"{name}: {wanted}; {back} message(s) moved back from {temporary} (an interrupted run's)")
            elif state is None:
                out(f"{name}: declared ({wanted})")
            else:
                out(f"{name}: already {wanted}, nothing to do")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m common.queues", description=(
        "convert: with every service stopped, declare each durable queue (rpc-<service>, the event queues, "
        "dead-letters) as BROKER_QUEUE_TYPE and BROKER_DELIVERY_LIMIT say, moving the messages of one declared "
        "otherwise aside and back (docs/operations.md)."))
    parser.add_argument("command", choices=["convert"])
    parser.parse_args(argv)
    broker = settings().broker
    print(f"queues on {settings().amqp_uri}: {broker.queue_type}"
          + (f", delivery limit {broker.delivery_limit}" if broker.queue_type == "quorum" else ""))
    return convert(settings().amqp_uri)


if __name__ == "__main__":
    sys.exit(main())
