"""A 3-node RabbitMQ cluster with quorum queues (BROKER_NODES=3 as `make run` starts it), mixed traffic from
10 clients (renames of one organization, invitations and spends, the last two under Idempotency-Keys
retried with the same key after a failure), and one broker node killed (SIGKILL) and started again: first
the node every process is connected to (the first AMQP_URI names), then the one that leads the most of the
queues (quorum queues' leaders are spread over the nodes). No service process exits and none logs a
traceback; every request answers 2xx or a JSON 503 (never a 500); requests succeed again within 10 s of
each kill (measured and printed); every change that answered 2xx is in the audit trail exactly once; no key
is charged or invited twice; the balance adds up."""
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from common.config import SERVICES
from common.events import CONSUMER_QUEUES
from devtools.system import Broker, free_broker_port, free_port
from gateway import tokens
from tests.conftest import RunningSystem
from tests.e2e.helpers import audit_entries, create_agent, create_organization, join, ok, wait_for
from tests.e2e.test_credits import assert_ledger_adds_up, balance, ledger, spend
from tests.faults.helpers import Seen, change_key, lost_and_duplicated, trail_holds, unavailable

CLIENTS = 10
PAUSE = 0.1                  # between one client's requests
BEFORE, DOWN, AFTER = 2.0, 5.0, 4.0   # seconds of traffic before a kill, with the node down, after its restart
RECOVERY_BOUND = 10.0        # requests succeed again within this of a kill
GRANTED, AMOUNT = Decimal("100000"), Decimal("0.25")
QUEUES = [f"rpc-{name}" for name in SERVICES] + [queue.name for queue in CONSUMER_QUEUES]


@pytest.fixture(scope="module")
def cluster_system(tmp_path_factory):
    """Three clustered nodes and the whole system on them (SQLite), quorum queues as the cluster's default."""
    directory = tempfile.mkdtemp(prefix="orgplatform-cluster-")
    broker = Broker(directory, free_broker_port(3), nodes=3).start()
    running = RunningSystem(tmp_path_factory.mktemp("cluster-system"), broker.amqp_uri, free_port(),
                            dict(JWT_SECRET=tokens.secret(), LOCALSTRIPE_PORT=str(free_port())))
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

    seen, stop = Seen(), threading.Event()
    answers = []                     # (sent at, answered at, succeeded) of every request
    renamed, rename_failed, invited, charges = [], [], {}, {}

    def send(request, success):
        sent = time.monotonic()
        response = seen.send(request)
        answers.append((sent, time.monotonic(), response.status_code in success))
        return response

    def until_answered(request, success):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            response = send(request, success)
            if response.status_code in success:
                return response
            unavailable(response)
            time.sleep(0.2)
        raise AssertionError(f"no answer in {success} within 60 s")

    def rename(t, n):
        name = f"Node {t}-{n}"
        response = send(lambda: owner.patch(base, json={"name": name}), (200,))
        if response.status_code == 200:
            renamed.append(name)
        else:                                       # not retried: it may or may not have happened
            unavailable(response)
            rename_failed.append(name)

    def invite_once(t, n):
        key, email = uuid.uuid4().hex, f"invitee-{t}-{n}-{uuid.uuid4().hex[:6]}@example.com"
        response = until_answered(lambda: owner.post(f"{base}/invitations", json={"email": email, "roles": ["member"]},
                                                     headers={"Idempotency-Key": key}), (201,))
        invited[key] = response.json()["id"]

    def spend_once():
        key = uuid.uuid4().hex
        charges[key] = until_answered(lambda: spend(spender, org, agent, str(AMOUNT), key), (201,)).json()["id"]

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
        time.sleep(AFTER)
        # From the kill on: the first request after which every request sent succeeded.
        after = sorted((sent, ok_) for sent, _, ok_ in answers if sent >= killed_at - 10)
        failed = [sent for sent, ok_ in after if not ok_]
        recovered = max(0.0, max(failed) - killed_at) if failed else 0.0
        recoveries.append((label, recovered, len(failed)))

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
            [job.result() for job in clients]

    for name, process in system.processes.items():
        assert process.poll() is None and process.pid == pids[name], f"{name} exited or was restarted"
        log = (system.log_dir / f"{name}.log").read_text()
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
                                for label, seconds, failures in recoveries))
    assert not lost and not duplicated, (lost, duplicated)
    renames_in_trail = {change_key(e)[1] for e in entries if e["type"] == "organization.renamed"}
    assert renames_in_trail <= set(renamed) | set(rename_failed)
    assert set(seen.statuses) <= {"200", "201", "503"}, seen.summary()
    assert all(seconds <= RECOVERY_BOUND for _, seconds, _ in recoveries), recoveries
    # No key charged twice: one ledger entry per key, the balance is grants minus spends.
    spends = ledger(owner, org, kind="spend")
    assert sorted(s["id"] for s in spends) == sorted(charges.values())
    assert_ledger_adds_up(owner, org)
    assert balance(owner, org) == GRANTED - AMOUNT * len(charges)
    # No invitation twice: one per key.
    assert len(set(invited.values())) == len(invited)
