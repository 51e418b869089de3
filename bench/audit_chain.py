"""The audit consumer's cost of the hash chain (SPEC §13): change events handed to the audit service's
consumer entrypoint (AuditService.on_change_events, through Nameko's worker_factory: the message checks, then
the storing of reactions.py, a batch per transaction, 10 events a batch as the consumer takes them with the
default MAX_WORKERS), with the chain (the service as it is) and without it (the same entrypoint storing the
way it did before the chain: common.inbox's batch rule with the same entries and changes), on SQLite or
(--postgres) a throwaway PostgreSQL cluster. The broker's part (delivery, ack) is the same either way and is
left out, so the ratio is the chain's cost at its largest. Rounds alternate with and without, each on a
fresh database, for one busy organization and for 20 organizations round-robin; the medians are compared.
Prints figures; asserts nothing.

With --baseline REV, also the real consumer through the broker (SQLite): the audit service process draining
a backlog of events from its queue on a private RabbitMQ node, as it is here and as it was at REV (a git
worktree of the commit before the chain, e.g. 88a70c4), alternating, medians.

    .venv/bin/python bench/audit_chain.py [--events 4000] [--postgres] [--baseline 88a70c4]
"""
import argparse
import json
import os
import sqlite3
import subprocess
import tempfile
import time
import uuid
from statistics import median
from unittest.mock import patch

from kombu import Connection
from nameko.testing.services import worker_factory

from common import inbox
from common.db import Store
from common.events import AUDIT_QUEUE, CHANGE_EXCHANGE, change_event
from common.migrate import upgrade
from services.audit import reactions, trail
from services.audit.models import AuditEntry
from services.audit.service import AuditService

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BATCH = 10
ROUNDS = 3
WITHOUT_CHAIN = inbox.Reactions(inbox.Inbox(AuditEntry, record=trail.entry, kept_for=None),
                                otherwise=reactions.store_entry)   # the audit consumer before the chain


def messages(count, organizations):
    """Change events as they come off the queue (the consumer checks and parses them)."""
    actor = {"id": "dina", "email": "dina@example.com"}
    orgs = [str(uuid.uuid4()) for _ in range(organizations)]
    return [json.loads(json.dumps(change_event(
        "agent.updated", "update", orgs[i % organizations], actor, "agent", "a1",
        before={"instructions": f"Step {i}", "name": "Triage"}, after={"instructions": f"Step {i + 1}",
                                                                         "name": "Triage desk"})))
        for i in range(count)]


def rate(store, batches, chained):
    consumer = worker_factory(AuditService, db=store)
    with patch.object(reactions, "handle_change_events",
                      reactions.handle_change_events if chained else WITHOUT_CHAIN.once_each):
        started = time.perf_counter()
        for batch in batches:
            consumer.on_change_events(batch)
        return sum(map(len, batches)) / (time.perf_counter() - started)


def drain_rate(code_dir, amqp_uri, backlog, workdir):
    """Events per second the audit service of `code_dir` stores while draining `backlog` from its queue:
    from its first stored entry to its last (the process's start-up left out)."""
    data_dir = tempfile.mkdtemp(dir=workdir)
    env = dict(os.environ, DATA_DIR=data_dir, AMQP_URI=amqp_uri, PYTHONWARNINGS="ignore",
               AUDIT_CHECKPOINT_SECONDS="3600", PYTHONPATH=code_dir)
    python = os.path.join(ROOT, ".venv", "bin", "python")
    subprocess.run([python, "-m", "common.migrate", "audit"], cwd=code_dir, env=env, check=True,
                   capture_output=True)
    with Connection(amqp_uri) as connection:
        queue = AUDIT_QUEUE(connection.default_channel)
        queue.declare()
        queue.purge()
        producer = connection.Producer()
        for message in backlog:
            producer.publish(json.dumps(message), exchange=CHANGE_EXCHANGE, routing_key=message["type"],
                             content_type="application/json", delivery_mode=2, message_id=message["event_id"])
    with open(os.path.join(data_dir, "audit.log"), "wb") as log:
        process = subprocess.Popen([python, "-m", "devtools.serve", "services.audit.service"], cwd=code_dir,
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        database = sqlite3.connect(os.path.join(data_dir, "audit.sqlite"), timeout=30)
        first = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            stored = database.execute("SELECT count(*) FROM audit_entries").fetchone()[0]
            now = time.perf_counter()
            if stored and first is None:
                first = (stored, now)
            if stored >= len(backlog):
                return (stored - first[0]) / (now - first[1])
            time.sleep(0.02)
        raise RuntimeError(f"the audit service of {code_dir} did not drain its backlog (log in {data_dir})")
    finally:
        process.terminate()
        process.wait(30)


def through_the_broker(baseline, count, workdir):
    from devtools.system import Broker, free_broker_port
    worktree = os.path.join(workdir, "baseline")
    subprocess.run(["git", "worktree", "add", "--detach", worktree, baseline], cwd=ROOT, check=True,
                   capture_output=True)
    broker = Broker(os.path.join(workdir, "rabbitmq"), free_broker_port()).start()
    try:
        figures = {"before": [], "with": []}
        for _ in range(ROUNDS):
            for name, code_dir in (("before", worktree), ("with", ROOT)):
                figures[name].append(drain_rate(code_dir, broker.amqp_uri, messages(count, 20), workdir))
        before, with_chain = median(figures["before"]), median(figures["with"])
        print(f"  the audit service draining {count} events from RabbitMQ (SQLite, 20 organizations): at "
              f"{baseline} {before:7.1f} events/s, with the chain {with_chain:7.1f} events/s: "
              f"{with_chain / before:.2f}x (goal >= 0.85x); rounds {[round(f) for f in figures['before']]} "
              f"and {[round(f) for f in figures['with']]}")
    finally:
        broker.stop()
        subprocess.run(["git", "worktree", "remove", "--force", worktree], cwd=ROOT, check=False, capture_output=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--baseline", help="a commit before the chain: also measure the real consumer through "
                                           "the broker, here against there")
    args = parser.parse_args()
    cluster, workdir = None, tempfile.mkdtemp(prefix="audit-chain-bench-")
    if args.postgres:
        from devtools.postgres import PostgresCluster
        cluster = PostgresCluster().start()
    try:
        made = 0

        def fresh_store():
            nonlocal made
            made += 1
            url = (cluster.create_database(f"audit_bench_{made}") if cluster
                   else f"sqlite:///{workdir}/audit-{made}.sqlite")
            upgrade("audit", url)
            return Store(url)

        print(f"{args.events} events per figure in batches of {BATCH}, {'PostgreSQL' if cluster else 'SQLite'}, "
              f"median of {ROUNDS} alternating rounds")
        for organizations in (1, 20):
            figures = {True: [], False: []}
            for _ in range(ROUNDS):
                for chained in (False, True):
                    batch_events = messages(args.events, organizations)
                    batches = [batch_events[i:i + BATCH] for i in range(0, len(batch_events), BATCH)]
                    figures[chained].append(rate(fresh_store(), batches, chained))
            without, with_chain = median(figures[False]), median(figures[True])
            print(f"  {organizations:>2} organization(s): without the chain {without:7.1f} events/s, with it "
                  f"{with_chain:7.1f} events/s: {with_chain / without:.2f}x (goal >= 0.85x); rounds without "
                  f"{[round(f) for f in figures[False]]}, with {[round(f) for f in figures[True]]}")
        if args.baseline:
            through_the_broker(args.baseline, args.events, workdir)
    finally:
        if cluster:
            cluster.stop()


if __name__ == "__main__":
    main()
