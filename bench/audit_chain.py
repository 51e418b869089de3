"""The audit consumer's cost of the hash chain (SPEC §13): change events stored as the audit service stores
them (services/audit/reactions.py: a batch per transaction, 10 events a batch as its consumer takes them
with the default MAX_WORKERS), with the chain (the service as it is) and without it (the same reactions
without trail.link), on SQLite or (--postgres) a throwaway PostgreSQL cluster. Rounds alternate with and
without, each on a fresh database, for one busy organization and for 20 organizations round-robin; the
medians are compared. Prints figures; asserts nothing.

    .venv/bin/python bench/audit_chain.py [--events 4000] [--postgres]
"""
import argparse
import tempfile
import time
import uuid
from statistics import median

from common import inbox
from common.db import Store
from common.events import change_event, parse_change_event
from common.migrate import upgrade
from services.audit import reactions

BATCH = 10
ROUNDS = 3
WITHOUT_CHAIN = inbox.Reactions(reactions.REACTIONS.inbox, otherwise=reactions.store_entry)


def events(count, organizations):
    actor = {"id": "dina", "email": "dina@example.com"}
    orgs = [str(uuid.uuid4()) for _ in range(organizations)]
    return [parse_change_event(change_event(
        "agent.updated", "update", orgs[i % organizations], actor, "agent", "a1",
        before={"instructions": f"Step {i}", "name": "Triage"}, after={"instructions": f"Step {i + 1}",
                                                                         "name": "Triage desk"}))
        for i in range(count)]


def rate(store, batches, chained):
    started = time.perf_counter()
    for batch in batches:
        if chained:
            reactions.handle_change_events(store, batch)
        else:
            WITHOUT_CHAIN.once_each(store, batch)
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
                    batch_events = events(args.events, organizations)
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
