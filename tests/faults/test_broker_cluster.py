"""A 3-node RabbitMQ cluster with quorum queues (BROKER_NODES=3 as `make run` starts it, SQLite), one for the
module (each test's setup costs a cluster and a system, about 20 s):

- A poison message: an event a reaction always fails on (an agent.created whose agent state lacks its
  fields: members and credits, which keep agents' access, raise on it and requeue it) is delivered
  BROKER_DELIVERY_LIMIT + 1 times, then dead-lettered into the `dead-letters` queue, once per queue it
  died in; changes made meanwhile and afterwards reach the audit trail and the read models; the operator's
  route lists it (its queue, event id, reason) without consuming it, and refuses any other token.
- A broker node killed: mixed traffic from 10 clients (renames of one organization, invitations and spends,
  the last two under Idempotency-Keys retried with the same key after a failure), and one node killed
  (SIGKILL) and started again, one at a time: first the node every process is connected to (the first AMQP_URI names),
  then the one that leads the most of the queues (quorum queues' leaders are spread over the nodes). No
  service process exits and none logs a traceback; every request answers 2xx or a JSON 503 (never a 500);
  requests succeed again within 10 s of each kill (measured and printed); every change that answered 2xx
  is in the audit trail exactly once; no key is charged or invited twice; the balance adds up.

The dead letters' tests run first: they count what the dead-letter queue holds, and requests that expire
during a kill would be dead-lettered too."""

import json
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import requests
from kombu import Connection

from common.config import SERVICES
from common.events import CHANGE_EXCHANGE, CONSUMER_QUEUES, CREDITS_QUEUE, MEMBERS_QUEUE, change_event
from devtools.system import Broker, free_broker_port, free_port
from gateway import tokens
from tests.conftest import RunningSystem
from tests.e2e.helpers import (
    audit_entries,
    create_agent,
    create_organization,
    error_code,
    join,
    ok,
    wait_for,
)
from tests.e2e.test_credits import assert_ledger_adds_up, balance, ledger, spend
from tests.faults.helpers import Seen, change_key, lost_and_duplicated, trail_holds, unavailable, until_answered

CLIENTS = 10
PAUSE = 0.1                  # between one client's requests
BEFORE, DOWN, AFTER = 2.0, 5.0, 4.0   # seconds of traffic before a kill, with the node down, after its restart
RECOVERY_BOUND = 10.0        # requests succeed again within this of a kill
GRANTED, AMOUNT = Decimal("100000"), Decimal("0.25")
QUEUES = [f"rpc-{name}" for name in SERVICES] + [queue.name for queue in CONSUMER_QUEUES]
DELIVERY_LIMIT = 3           # small, so the poison is dead-lettered soon (a kill redelivers a message once)
OPERATOR_TOKEN = "operator-" + uuid.uuid4().hex
DEAD_LETTERS = "/v1/operations/dead-letters"


@pytest.fixture(scope="module")
def cluster_system(tmp_path_factory):
    """Three clustered nodes and the whole system on them (SQLite), quorum queues as the cluster's default."""
    directory = tempfile.mkdtemp(prefix="orgplatform-cluster-")
    broker = Broker(directory, free_broker_port(3), nodes=3).start()
    running = RunningSystem(tmp_path_factory.mktemp("cluster-system"), broker.amqp_uri, free_port(),
                            dict(JWT_SECRET=tokens.secret(), LOCALSTRIPE_PORT=str(free_port()),
                                 BROKER_DELIVERY_LIMIT=str(DELIVERY_LIMIT), OPERATOR_TOKEN=OPERATOR_TOKEN))
    try:
        assert running.env["AMQP_URI"].count(";") == 2
        running.start_all()
        yield running, broker
    finally:
        running.stop_all()
        broker.stop()
        shutil.rmtree(directory, ignore_errors=True)


def leaders(node):
    """{queue: the node leading it} of the queues the traffic uses, as the cluster reports it."""
    rows = (line.split("\t") for line in node.ctl("list_queues", "name", "type", "leader").splitlines())
    return {row[0]: row[2] for row in rows if len(row) == 3 and row[0] in QUEUES and row[1] == "quorum"}


def all_members_online(node):
    """Whether each queue the traffic uses has its three members online, as `node` reports it."""
    rows = [line.split("\t") for line in node.ctl("list_queues", "name", "online").splitlines()]
    online = {row[0]: row[1].count("@") for row in rows if len(row) == 2}
    return all(online.get(queue) == 3 for queue in QUEUES)


def diagnose(system, broker):
    """After a failure, for its reader: every process writes its green threads' stacks to its log (SIGUSR2,
    devtools.serve), and each node's connections and consumers go to broker.log beside the processes' logs."""
    for name, process in system.processes.items():
        if process.poll() is None and name != "localstripe":          # not one of ours: no handler
            process.send_signal(signal.SIGUSR2)
    with open(system.log_dir / "broker.log", "a") as out:
        for node in broker.nodes:
            for command in (("list_connections", "name", "user", "state"),
                            ("list_consumers", "queue_name", "channel_pid", "active")):
                try:
                    out.write(f"--- {node.name}: {' '.join(command)}\n{node.ctl(*command)}\n")
                except subprocess.CalledProcessError as exc:
                    out.write(f"--- {node.name}: {command[0]} failed: {exc.stderr}\n")
    time.sleep(1)                                    # the stacks written
    return f"see {system.log_dir}"


def failure(response):
    """What a failed answer says, short: its status, code and message."""
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message'][:80]}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} {response.text[:80]}"


def operator_get(system, token=OPERATOR_TOKEN, **params):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.get(system.url + DEAD_LETTERS, headers=headers, params=params, timeout=30)


def queue_depths(amqp_uri, names):
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        return {name: channel.queue_declare(name, passive=True).message_count for name in names}


def test_a_poison_event_ends_in_the_dead_letter_queue_and_the_others_flow_on(cluster_system, figure):
    system, broker = cluster_system
    alice = system.user("alice")
    org = create_organization(alice, "Poisoned")["id"]
    assert ok(operator_get(system)) == {"total": 0, "dead_letters": []}

    # The queues are quorum queues with the delivery limit (declared otherwise, the broker would refuse).
    with Connection(broker.amqp_uri) as connection:
        for queue in (MEMBERS_QUEUE, CREDITS_QUEUE):
            connection.channel().queue_declare(queue.name, durable=True, auto_delete=False, arguments={
                "x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT, "x-dead-letter-exchange": "dead-letters",
                "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})

    poison = change_event("agent.created", "create", org, {"id": alice.id, "email": alice.email}, "agent",
                          str(uuid.uuid4()), after={"name": "Poison"},
                          state={"agents": [{"agent_id": str(uuid.uuid4())}]})    # no organization, no version
    started = time.monotonic()
    with Connection(broker.amqp_uri, transport_options={"confirm_publish": True}) as connection:
        connection.Producer().publish(json.dumps(poison), exchange=CHANGE_EXCHANGE, routing_key="agent.created",
                                      content_type="application/json", delivery_mode=2,
                                      message_id=poison["event_id"])
    # Meanwhile: changes whose events go through the same queues.
    ok(alice.patch(f"/v1/organizations/{org}", json={"name": "Still flowing"}))
    agent = create_agent(alice, org, "Healthy agent")["id"]

    listed = wait_for(lambda: (lambda body: body if body["total"] >= 2 else None)(ok(operator_get(system))),
                      timeout=30, message="the poison event dead-lettered from members and credits")
    figure(f"a poison event dead-lettered from both queues {time.monotonic() - started:.1f} s after it was "
           f"published (delivery limit {DELIVERY_LIMIT})")
    assert listed["total"] == 2
    assert sorted(letter["queue"] for letter in listed["dead_letters"]) == ["credits.change-events",
                                                                             "members.change-events"]
    for letter in listed["dead_letters"]:
        assert (letter["event_id"], letter["type"], letter["reason"], letter["routing_key"]) == (
            poison["event_id"], "agent.created", "delivery_limit", "agent.created")
        assert letter["delivery_count"] == DELIVERY_LIMIT + 1 and letter["deaths"] == 1
        assert letter["body"]["state"] == poison["state"] and letter["dead_lettered_at"].endswith("Z")
    # Listed, not consumed: the same two again; and nothing of it is left looping in the consumers' queues.
    assert ok(operator_get(system, limit=1)) == {"total": 2, "dead_letters": listed["dead_letters"][:1]}
    assert ok(operator_get(system))["total"] == 2
    wait_for(lambda: set(queue_depths(broker.amqp_uri, ["members.change-events", "credits.change-events"]).values())
             == {0}, message="the consumers' queues empty")

    # Afterwards too: the trail holds every change (and the poison's own entry: audit stores any event),
    # and credits' read models know the new agent and the member (a spend through it succeeds).
    ok(alice.patch(f"/v1/organizations/{org}", json={"name": "After the poison"}))
    wanted = {"organization.renamed", "agent.created"}
    entries = wait_for(lambda: (lambda e: e if len([x for x in e if x["type"] in wanted]) >= 4 else None)(
        audit_entries(alice, org)), message="the trail")
    assert [e["changes"] for e in entries if e["type"] == "organization.renamed"][0][0]["new_value"] == \
        "After the poison"
    ok(alice.post(f"/v1/organizations/{org}/credits/grants", json={"amount": "10", "type": "paid"}), 201)
    wait_for(lambda: alice.post(f"/v1/organizations/{org}/usage", json={"agent_id": agent, "amount": "1.5"},
                                headers={"Idempotency-Key": f"after-poison-{uuid.uuid4().hex}"}).status_code == 201,
             message="a spend through the new agent")


def test_the_dead_letters_take_the_operators_token(cluster_system):
    system, _ = cluster_system
    assert error_code(operator_get(system, token=None), 401) == "operator_token_required"
    assert error_code(operator_get(system, token=OPERATOR_TOKEN + "x"), 401) == "invalid_operator_token"
    assert error_code(operator_get(system, token=tokens.mint("u1", "u1@example.com")), 401) == "invalid_operator_token"
    assert error_code(operator_get(system, limit=0), 422) == "validation_error"
    assert error_code(operator_get(system, limit=201), 422) == "validation_error"
    assert error_code(operator_get(system, limit="many"), 422) == "validation_error"


def test_a_broker_node_killed_under_mixed_traffic_loses_and_doubles_nothing(cluster_system, figure):
    system, broker = cluster_system
    led = leaders(broker.nodes[0])
    assert sorted(led) == sorted(QUEUES), f"every queue is a quorum queue: {led}"
    owner = system.user("owner")
    org = create_organization(owner, "Three nodes")["id"]
    base = f"/v1/organizations/{org}"
    ok(owner.post(f"{base}/credits/grants", json={"amount": str(GRANTED), "type": "paid"}), 201)
    agent = create_agent(owner, org, "Clustered agent")["id"]
    spender = join(system, owner, org, ["member"], "spender")
    ok(owner.put(f"{base}/agents/{agent}/assignees/{spender.id}"), 201)
    wait_for(lambda: ok(spender.post(f"{base}/usage", json={"agent_id": agent, "amount": "0.01", "dry_run": True}))
             ["allowed"], message="the spender may spend")
    pids = {name: process.pid for name, process in system.processes.items()}
    # What each process logs from here on (the poison of the test before left its reactions' tracebacks).
    log_offsets = {name: (system.log_dir / f"{name}.log").stat().st_size for name in system.processes}

    seen, stop = Seen(), threading.Event()
    answers = []                     # (sent at, answered at, succeeded, why not) of every request
    renamed, rename_failed, invited, charges = [], [], {}, {}

    def send(request, success, kind):
        sent = time.monotonic()
        response = seen.send(request)
        succeeded = response.status_code in success
        answers.append((sent, time.monotonic(), succeeded, None if succeeded else f"{kind}: {failure(response)}"))
        return response

    def rename(t, n):
        name = f"Node {t}-{n}"
        response = send(lambda: owner.patch(base, json={"name": name}), (200,), "rename")
        if response.status_code == 200:
            renamed.append(name)
        else:                                       # not retried: it may or may not have happened
            unavailable(response)
            rename_failed.append(name)

    def invite_once(t, n):
        key, email = uuid.uuid4().hex, f"invitee-{t}-{n}-{uuid.uuid4().hex[:6]}@example.com"
        response = until_answered(lambda request: send(request, (201,), "invite"),
                                  lambda: owner.post(f"{base}/invitations", json={"email": email, "roles": ["member"]},
                                                     headers={"Idempotency-Key": key}), (201,))
        invited[key] = response.json()["id"]

    def spend_once():
        key = uuid.uuid4().hex
        charges[key] = until_answered(lambda request: send(request, (201,), "spend"),
                                      lambda: spend(spender, org, agent, str(AMOUNT), key), (201,)).json()["id"]

    def client(t):
        n = 0
        while not stop.is_set():
            if n % 3 == 0:
                rename(t, n)
            elif n % 3 == 1:
                invite_once(t, n)
            else:
                spend_once()
            n += 1
            time.sleep(PAUSE)

    recoveries = []

    def kill_and_restart(node, label):
        time.sleep(BEFORE)
        killed_at = time.monotonic()
        node.kill()
        time.sleep(DOWN)
        node.start()                                 # it rejoins its cluster
        # One fault at a time: the next kill waits until every queue has its three members again (a node
        # killed while the one restarted a moment ago is still rejoining would leave no majority).
        wait_for(lambda: all_members_online(node), timeout=60, interval=0.5,
                 message="every quorum queue's three members online")
        time.sleep(AFTER)
        # From the kill on: the first request after which every request sent succeeded.
        failed = [(sent, why) for sent, _, ok_, why in answers if sent >= killed_at - 10 and not ok_]
        recovered = max(0.0, max(sent for sent, _ in failed) - killed_at) if failed else 0.0
        # What failed, second by second from the kill: read when the bound is missed.
        timeline = Counter((int(sent - killed_at), why) for sent, why in failed)
        recoveries.append((label, recovered, len(failed),
                           [f"{second:+d} s {why} x{count}" for (second, why), count in sorted(timeline.items())]))

    with ThreadPoolExecutor(CLIENTS) as pool:
        clients = [pool.submit(client, t) for t in range(CLIENTS)]
        try:
            # Every process connected to the first node named in AMQP_URI: each must move to another.
            kill_and_restart(broker.nodes[0], "the node every process was connected to")
            busiest = Counter(leaders(broker.nodes[1]).values()).most_common(1)[0][0]
            kill_and_restart(next(node for node in broker.nodes if node.name == busiest),
                             f"the node leading the most queues ({busiest})")
        finally:
            stop.set()
            try:
                [job.result() for job in clients]
            except Exception as exc:
                raise AssertionError(f"a client gave up ({diagnose(system, broker)})") from exc

    for name, process in system.processes.items():
        assert process.poll() is None and process.pid == pids[name], f"{name} exited or was restarted"
        with open(system.log_dir / f"{name}.log") as log_file:
            log_file.seek(log_offsets[name])
            log = log_file.read()
        assert "Traceback" not in log, (name, log[-3000:])

    expected = ([("organization.renamed", name) for name in renamed] +
                [("invitation.created", id_) for id_ in invited.values()] +
                [("credits.spent", id_) for id_ in charges.values()])
    wait_for(lambda: trail_holds(owner, org, expected), timeout=30, message="an entry for every change")
    time.sleep(1.5)                                  # a late duplicate would show up by now
    entries = audit_entries(owner, org)
    lost, duplicated = lost_and_duplicated(entries, expected,
                                           {"organization.renamed", "invitation.created", "credits.spent"})
    figure(f"a broker node killed (3-node cluster, quorum queues): {seen.summary()}; {len(renamed)} renames "
           f"({len(rename_failed)} failed), {len(invited)} invitations, {len(charges)} spends; requests succeed "
           "again " + ", ".join(f"{seconds:.1f} s after killing {label} ({failures} failed)"
                                for label, seconds, failures, _ in recoveries))
    assert not lost and not duplicated, (lost, duplicated)
    renames_in_trail = {change_key(e)[1] for e in entries if e["type"] == "organization.renamed"}
    assert renames_in_trail <= set(renamed) | set(rename_failed)
    assert set(seen.statuses) <= {"200", "201", "503"}, seen.summary()
    assert all(seconds <= RECOVERY_BOUND for _, seconds, _, _ in recoveries), (recoveries, diagnose(system, broker))
    # No key charged twice: one ledger entry per key, the balance is grants minus spends.
    spends = ledger(owner, org, kind="spend")
    assert sorted(s["id"] for s in spends) == sorted(charges.values())
    assert_ledger_adds_up(owner, org)
    assert balance(owner, org) == GRANTED - AMOUNT * len(charges)
    # No invitation twice: one per key.
    assert len(set(invited.values())) == len(invited)
