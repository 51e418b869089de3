"""The spend's targets of issue 27, both backends side by side in one run: spend throughput at 20 concurrent
against the framework ceiling (bench/ceiling.py) measured on the same broker, its p99, the sequential p50
against the ceiling's, one organization with 100 concurrent clients against the same load spread over 20
organizations, the CPU per spend of every process (from /proc) and, on PostgreSQL, the round trips per spend
(the statements credits' database received, from pg_stat_statements: BEGIN, COMMIT and a pool's ping
each count; the outbox relay's and the timers' included, as they are part of what a spend costs).
Prints figures; asserts nothing. Starts its own broker and system per backend, one after the other.

    .venv/bin/python bench/spend_targets.py [--spends 1000] [--concurrency 20] [--hot 100] [--only sqlite|postgres]
    .venv/bin/python bench/spends.py --targets [--spends 1000] [--concurrency 20]
"""
import eventlet

eventlet.monkey_patch()  # noqa: E402

import argparse
from contextlib import contextmanager
from decimal import Decimal
from statistics import median

from ceiling import run_ceiling
from harness import client, percentile, process_cpu, running_system, timed
from spends import member_client, organization_with_credit, post_spend
from sqlalchemy import create_engine, text

SPREAD = 20             # organizations the spread load goes round


@contextmanager
def running(backend):
    """A private broker and system on `backend` (bench/harness.py); yields (system, statements) where
    statements() gives the statements each PostgreSQL database received so far ({} on SQLite)."""
    with running_system(backend == "postgres", count_statements=True) as system:
        yield system, _statement_counter(system.postgres_cluster)


def _statement_counter(cluster):
    if cluster is None:
        return lambda: {}
    engine = create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{cluster.port}/postgres",
                           isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))

    def statements(top=False):
        with engine.connect() as connection:
            if top:     # each database's statements, most called first
                return connection.execute(text(
                    "SELECT d.datname, s.calls, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 70) "
                    "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                    "WHERE d.datname IN ('credits', 'audit') ORDER BY d.datname, s.calls DESC")).all()
            return dict(connection.execute(text(
                "SELECT d.datname, sum(s.calls)::bigint FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                "GROUP BY d.datname")).all())
    statements.reset = lambda: _reset(engine)
    return statements


def _reset(engine):
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_stat_statements_reset()"))


def measure(backend, n, c, hot):
    figures = {}
    with running(backend) as (system, statements):
        url = system.url
        owner, member = client("owner"), member_client(url, "member")
        org, agent = organization_with_credit(url, owner, "Targets", [member])

        def spend_as(api, org_id, agent_id):
            return lambda: post_spend(api, url, org_id, agent_id).raise_for_status()

        timed(spend_as(member, org, agent), n // 5, c)                          # warm-up, not counted
        figures["sequential"] = timed(spend_as(member, org, agent), n // 2, 1)
        before_cpu, before_statements = process_cpu(system), statements()
        figures["concurrent"] = timed(spend_as(member, org, agent), n, c)
        after_cpu, after_statements = process_cpu(system), statements()
        figures["cpu"] = {name: (after_cpu[name] - before_cpu[name]) * 1000 / n for name in after_cpu
                          if name in before_cpu}
        figures["round_trips"] = {name: (after_statements[name] - before_statements.get(name, 0)) / n
                                  for name in after_statements if name in ("credits", "audit")}
        if backend == "postgres":       # what they are, per spend (a string of two statements counts two)
            statements.reset()
            timed(spend_as(member, org, agent), n, c)
            figures["statements"] = [(db, calls / n, query) for db, calls, query in statements(top=True)
                                     if calls / n >= 0.05]

        # One organization with `hot` clients (each its own member) against the same load over SPREAD organizations.
        members = [member_client(url, f"hot-{i}") for i in range(hot)]
        hot_org, hot_agent = organization_with_credit(url, owner, "Hot", members)
        spenders = iter(range(10 ** 9))
        one = lambda: spend_as(members[next(spenders) % hot], hot_org, hot_agent)()        # noqa: E731
        timed(one, hot, hot)                                                   # warm-up: each member once
        spread = [organization_with_credit(url, owner, f"Spread {i}") for i in range(SPREAD)]
        round_robin = lambda: spend_as(owner, *spread[next(spenders) % SPREAD])()           # noqa: E731
        timed(round_robin, hot, hot)
        rounds = {"one": [], "spread": []}
        for _ in range(3):      # alternating, medians: the machine drifts
            rounds["one"].append(timed(one, n, hot))
            rounds["spread"].append(timed(round_robin, n, hot))
        figures["hot"] = {k: sorted(v, key=lambda r: r[0])[1] for k, v in rounds.items()}
        figures["hot_rounds"] = {k: [round(r[0]) for r in v] for k, v in rounds.items()}
        made = n // 5 + n // 2 + n + (n if backend == "postgres" else 0)       # the member's in `org`
        balance = owner.get(f"{url}/v1/organizations/{org}/credits").json()["balance"]
        figures["balance_ok"] = Decimal(balance) == 1000000 - made * Decimal("0.0125")
        figures["ceiling"] = run_ceiling(system.env["AMQP_URI"], n, c)
    return figures


def show(results, c, hot):
    backends = list(results)
    rows = []

    def row(label, fn):
        rows.append((label, *(fn(results[b]) for b in backends)))

    def ratio(f):
        return f["concurrent"][0] / f["ceiling"]["concurrent"][0]

    row(f"spends, one org, {c} concurrent", lambda f: f"{f['concurrent'][0]:.0f}/s, {ratio(f):.2f}x ceiling")
    row(f"ceiling, {c} concurrent", lambda f: f"{f['ceiling']['concurrent'][0]:.0f}/s")
    row("  p99 (goal <= 100 ms)", lambda f: f"{percentile(f['concurrent'][1], 99):.0f} ms "
                                          f"(ceiling {percentile(f['ceiling']['concurrent'][1], 99):.0f})")
    row("sequential p50 (goal <= 2x ceiling's)",
        lambda f: f"{median(f['sequential'][1]):.1f} ms, "
                  f"{median(f['sequential'][1]) / median(f['ceiling']['sequential'][1]):.1f}x "
                  f"({median(f['ceiling']['sequential'][1]):.1f})")
    row(f"one org, {hot} concurrent (median of 3)", lambda f: f"{f['hot']['one'][0]:.0f}/s p99 "
                                                            f"{percentile(f['hot']['one'][1], 99):.0f} ms")
    row(f"{SPREAD} orgs, {hot} concurrent (median of 3)", lambda f: f"{f['hot']['spread'][0]:.0f}/s p99 "
                                                                  f"{percentile(f['hot']['spread'][1], 99):.0f} ms")
    row("  one org / spread (goal >= 0.8x)",
        lambda f: f"{f['hot']['one'][0] / f['hot']['spread'][0]:.2f}x "
                  f"(rounds {f['hot_rounds']['one']} / {f['hot_rounds']['spread']})")
    row("CPU per spend, all processes", lambda f: f"{sum(f['cpu'].values()):.1f} ms")
    for name in ("gateway", "credits", "audit", "postgres", "rabbitmq"):
        row(f"  {name}", lambda f, name=name: f"{f['cpu'][name]:.2f} ms" if name in f["cpu"] else "-")
    row("round trips per spend: credits", lambda f: f"{f['round_trips']['credits']:.1f}" if f["round_trips"] else "-")
    row("  audit", lambda f: f"{f['round_trips']['audit']:.2f}" if f["round_trips"] else "-")
    row("balance exact", lambda f: "yes" if f["balance_ok"] else "NO")
    for backend in backends:
        for db, per_spend, query in results[backend].get("statements", []):
            rows.append((f"  {db}: {per_spend:.2f} per spend", query, *([""] * (len(backends) - 1))))
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  " + "  ".join(f"{b:42s}" for b in backends))
    for label, *cells in rows:
        print(f"{label:{width}}  " + "  ".join(f"{cell:42s}" for cell in cells))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spends", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--hot", type=int, default=100, help="concurrent clients of the one-organization figure")
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    args = parser.parse_args()
    targets(args.spends, args.concurrency, args.hot, [args.only] if args.only else None)


def targets(n=1000, c=20, hot=100, backends=None):
    """Measure and print (bench/spends.py --targets calls this)."""
    backends = backends or ["sqlite", "postgres"]
    print(f"{n} spends per figure, {c} concurrent, one process per service, 2-core machine")
    results = {backend: measure(backend, n, c, hot) for backend in backends}
    show(results, c, hot)


if __name__ == "__main__":
    main()
