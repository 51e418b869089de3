"""The audit consumer's cost of the hash chain (SPEC §13): change events handed to the audit service's
consumer entrypoint (AuditService.on_change_events, through Nameko's worker_factory: the message checks, then
the storing of reactions.py, a batch per transaction, 10 events a batch as the consumer takes them with the
default MAX_WORKERS), with the chain (the service as it is) and without it (the same entrypoint storing the
way it did before the chain: common.inbox's batch rule with the same entries and changes), on SQLite or
(--postgres) a throwaway PostgreSQL cluster. The broker's part (delivery, ack) is the same either way and is
left out, so the ratio is the chain's cost at its largest. Rounds alternate with and without, each on a
fresh database, for one busy organization and for 20 organizations round-robin; the medians are compared.
Prints figures; asserts nothing.

    .venv/bin/python bench/audit_chain.py [--events 4000] [--postgres]
"""
import argparse
import json
import tempfile
import time
import uuid
from statistics import median
from unittest.mock import patch

from nameko.testing.services import worker_factory

from common import inbox
from common.db import Store
from common.events import change_event
from common.migrate import upgrade
from services.audit import reactions, trail
from services.audit.models import AuditEntry
from services.audit.service import AuditService

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


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--postgres", action="store_true")
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
    finally:
        if cluster:
            cluster.stop()


if __name__ == "__main__":
    main()
