"""The spend path (POST /v1/organizations/{org}/usage) through the gateway, beside a bare Nameko RPC round trip
and the framework ceiling (bench/ceiling.py: a bare HTTP -> RPC -> event -> consumer pipeline) measured on the
same broker in the same run, so its overhead is a ratio. Also: spends straight over RPC (credits.spend: the
path minus HTTP), spends spread over many organizations (no shared account lock), the dry run, the same spends
made by an API key for the member, and two delays measured under the concurrent spend load: from a spend's 201
to its entry in the audit trail, and from an agent's unassignment to the member's first refused spend. Prints
figures; asserts nothing. Starts its own broker and system (SQLite, or PostgreSQL with --postgres).

A spend is: gateway -> credits, then one write transaction in credits under the organization's account
lock (the right to use the agent from credits' read models of memberships and agents' access, replay
check, expiries, budget, grants drawn, ledger entry, usage, outbox event), then the audit event relayed
afterwards. The CPU each process spends per spend is printed too (from /proc).

    .venv/bin/python bench/spends.py [--spends 1000] [--concurrency 20] [--postgres]

With --metrics-overhead it measures only what the metrics cost the spend (common.metrics, docs/metrics.md):
two systems side by side, one with METRICS_ENABLED=false, rounds of concurrent spends alternating between
them (so a drift of the machine weighs on both), every process of the measured one scraped every second
while it is measured; both throughputs, their ratio (goal >= 0.95) and the CPU per spend.

With --tracing-overhead it measures what traces cost the spend (common.tracing, docs/tracing.md): three
systems side by side, rounds alternating as above (each round started by another state): tracing off (no
OTLP endpoint: ids only, for the log lines), exporting to a sink (bench/otlp_sink.py, an OTLP/HTTP endpoint
that reads and drops every export, in a process of its own), and exporting to nowhere (an endpoint nobody
listens on: the exporter's failures and retries, the spans dropped). Throughputs against off and the CPU
per spend of every process.

With --targets it prints issue 27's figures for SQLite and PostgreSQL side by side in one run
(bench/spend_targets.py: against the ceiling at 20 concurrent, p99, sequential p50, one organization with
100 concurrent clients against 20 organizations, CPU per spend per process, round trips per spend).
"""
import eventlet

eventlet.monkey_patch()  # noqa: E402

import subprocess
import sys
import time
import uuid
from contextlib import ExitStack, contextmanager
from decimal import Decimal
from pathlib import Path
from statistics import median

import eventlet.queue
import requests
from ceiling import report_ceiling, run_ceiling
from harness import (  # noqa: E402
    arguments,
    backend_name,
    background_load,
    client,
    percentile,
    process_cpu,
    report,
    report_cpu,
    report_lag,
    running_system,
    timed,
)
from nameko.standalone.rpc import ClusterRpcProxy

from common.auth import Identity, context_data  # noqa: E402
from devtools.system import free_port  # noqa: E402

AUDIT_PROBES = 50     # spends traced into the audit trail under load
REVOCATIONS = 10      # unassignments timed under load
GIVE_UP = 30          # seconds: a trace or a revocation this late is a failure, not a figure


def member_client(url, sub):
    """A signed-in session for user `sub`, who has called the API once (so members knows them)."""
    api = client(sub)
    api.user_id, api.email = sub, f"{sub}@example.com"     # what client() puts in the token
    api.get(f"{url}/v1/me").raise_for_status()
    return api


def organization_with_credit(url, owner, name, members=()):
    """An organization with plenty of credit and an agent assigned to each of `members` (who join, in a
    budget group with a limit that never binds)."""
    org = owner.post(f"{url}/v1/organizations", json={"name": name}).json()["id"]
    owner.post(f"{url}/v1/organizations/{org}/credits/grants", json={"amount": "1000000", "type": "paid"}
               ).raise_for_status()
    agent = owner.post(f"{url}/v1/organizations/{org}/agents", json={"name": "Bench agent"}).json()["id"]
    if members:
        group = owner.post(f"{url}/v1/organizations/{org}/budget-groups",
                           json={"name": "Bench", "monthly_limit": "1000000"}).json()["id"]
    for member in members:
        invitation = owner.post(f"{url}/v1/organizations/{org}/invitations",
                                json={"email": member.email, "roles": ["member"]}).json()
        member.post(f"{url}/v1/invitations/{invitation['id']}/accept").raise_for_status()
        owner.put(f"{url}/v1/organizations/{org}/agents/{agent}/assignees/{member.user_id}").raise_for_status()
        owner.put(f"{url}/v1/organizations/{org}/budget-groups/{group}/members/{member.user_id}").raise_for_status()
    return org, agent


def post_spend(api, url, org_id, agent_id, for_user=None):
    """One spend of 0.0125 with a fresh Idempotency-Key (by an API key: for the member `for_user`); the
    response, whatever its status."""
    body = {"agent_id": agent_id, "amount": "0.0125", **({"user_id": for_user} if for_user else {})}
    return api.post(f"{url}/v1/organizations/{org_id}/usage", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})


def key_client(url, owner, org_id):
    """An HTTP session authenticated by a new API key of the organization with scope usage:write."""
    created = owner.post(f"{url}/v1/organizations/{org_id}/api-keys",
                         json={"name": "Bench runtime", "scopes": ["usage:write"]})
    created.raise_for_status()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {created.json()['key']}"
    return session


def since(started):
    return (time.perf_counter() - started) * 1000


def audit_lags(url, spender, owner, org, agent, count):
    """Time from a spend's 201 until the owner finds its entry in the organization's audit trail (outbox ->
    relay -> broker -> audit -> database), a traced spend every ~50 ms. The figure includes up to one poll
    of the trail (a few ms, more under load)."""
    lags = []
    for _ in range(count):
        answer = post_spend(spender, url, org, agent)
        answer.raise_for_status()
        acknowledged = time.perf_counter()
        query = {"entity_type": "spend", "target": answer.json()["id"], "limit": 1}
        while not owner.get(f"{url}/v1/organizations/{org}/audit", params=query).json()["items"]:
            if since(acknowledged) > GIVE_UP * 1000:
                raise RuntimeError(f"spend {query['target']} not in the audit trail after {GIVE_UP} s")
            eventlet.sleep(0.005)
        lags.append(since(acknowledged))
        eventlet.sleep(0.05)
    return lags


def revocation_lags(url, owner, member, org, agent, times):
    """The owner unassigns the agent from `member`, who spends until refused (403/404); then it is assigned
    again and `member` spends until accepted. Returns the times from the DELETE's answer to the first
    refusal's answer (ms), how long each refused request itself took (ms) and, per revocation, how many
    spends were still accepted after the DELETE had answered."""
    assignee = f"{url}/v1/organizations/{org}/agents/{agent}/assignees/{member.user_id}"
    lags, refusals, accepted_after = [], [], []
    for _ in range(times):
        owner.delete(assignee).raise_for_status()
        revoked, accepted = time.perf_counter(), 0
        while (status := (answer := post_spend(member, url, org, agent)).status_code) == 201:
            accepted += 1
            if since(revoked) > GIVE_UP * 1000:
                raise RuntimeError(f"{member.user_id} still spends {GIVE_UP} s after the unassignment")
        if status not in (403, 404):
            raise RuntimeError(f"a spend after the unassignment answered {status}, not 403/404")
        lags.append(since(revoked))
        refusals.append(answer.elapsed.total_seconds() * 1000)
        accepted_after.append(accepted)
        owner.put(assignee).raise_for_status()
        assigned = time.perf_counter()
        while (status := post_spend(member, url, org, agent).status_code) != 201:
            if status not in (403, 404) or since(assigned) > GIVE_UP * 1000:
                raise RuntimeError(f"{member.user_id} cannot spend after the assignment again: {status}")
            eventlet.sleep(0.01)
    return lags, refusals, accepted_after


@contextmanager
def proxy_pool(config, size, context=None):
    """`size` standalone RPC proxies for as many green threads: one proxy's connection must not be read
    by two green threads at once. Yields checkout(fn), which runs fn(proxy) on a free one."""
    with ExitStack() as stack:
        free = eventlet.queue.LightQueue()
        for _ in range(size):
            free.put(stack.enter_context(ClusterRpcProxy(config, context_data=context)))

        def checkout(fn):
            rpc = free.get()
            try:
                return fn(rpc)
            finally:
                free.put(rpc)
        yield checkout


OVERHEAD_ROUNDS = 5     # rounds of each state; the medians are compared
SCRAPE_EVERY = 1.0      # seconds: every process of the measured system, as Prometheus would (15 s in deployment)


def warmed_spenders(systems, label, n, c):
    """A spender for each of `systems` ({state: system}): an owner's organization with credit and an agent,
    warmed up with n // 4 spends (not counted)."""
    spenders = {}
    for state, system in systems.items():
        owner = client(f"owner-{state}")
        org, agent = organization_with_credit(system.url, owner, f"{label} {state}")
        spenders[state] = spender(owner, system.url, org, agent)
        timed(spenders[state], n // 4, c)
    return spenders


def measured(system, spend, n, c):
    """A round of n spends on `system`: ((rate, latencies), {process: CPU ms per spend})."""
    before = process_cpu(system)
    result = timed(spend, n, c)
    after = process_cpu(system)
    return result, {name: (after[name] - before[name]) * 1000 / n for name in after if name in before}


def metrics_overhead(args):
    """Spends with metrics on against off: see the module's text."""
    n, c = args.spends, args.concurrency
    with ExitStack() as stack:
        systems = {state: stack.enter_context(running_system(args.postgres, {"METRICS_ENABLED": enabled}))
                   for state, enabled in (("off", "false"), ("on", "true"))}
        print(f"{n} spends per round, {c} concurrent, {OVERHEAD_ROUNDS} rounds each of metrics off and on "
              f"alternating, two systems side by side, {backend_name(args)}, 2-core machine")
        spenders = warmed_spenders(systems, "Metrics", n, c)
        rounds, cpu = {"off": [], "on": []}, {"off": [], "on": []}
        for _ in range(OVERHEAD_ROUNDS):
            for state, system in systems.items():
                with scraping(system if state == "on" else None) as scrapes:
                    result, used = measured(system, spenders[state], n, c)
                rounds[state].append(result)
                cpu[state].append(sum(used.values()))
                if state == "on" and not scrapes["pages"]:
                    raise RuntimeError("the metrics were not scraped during the round")
        off, on = (sorted(rounds[state], key=lambda r: r[0])[OVERHEAD_ROUNDS // 2] for state in ("off", "on"))
        report(f"HTTP POST usage, {c} concurrent, metrics off (median of {OVERHEAD_ROUNDS})", *off)
        report(f"HTTP POST usage, {c} concurrent, metrics on (median of {OVERHEAD_ROUNDS})", *on)
        print(f"  metrics on: {on[0] / off[0]:.3f}x the throughput with metrics off (goal >= 0.95), p99 "
              f"{percentile(on[1], 99):.0f} vs {percentile(off[1], 99):.0f} ms; rounds off "
              f"{[round(r[0], 1) for r in rounds['off']]}/s, on {[round(r[0], 1) for r in rounds['on']]}/s")
        cpu_off, cpu_on = median(cpu["off"]), median(cpu["on"])
        print(f"  CPU per spend, every process (median): off {cpu_off:.2f} ms, on {cpu_on:.2f} ms "
              f"({cpu_on / cpu_off:.3f}x)")


TRACING_STATES = ("off", "sink", "nowhere")


def tracing_overhead(args):
    """Spends with tracing off, exporting to a sink and exporting to nowhere: see the module's text."""
    n, c = args.spends, args.concurrency
    sink_port, nowhere_port = free_port(), free_port()
    sink = subprocess.Popen([sys.executable, str(Path(__file__).with_name("otlp_sink.py")), str(sink_port)],
                            stdout=subprocess.PIPE, text=True)
    settings = {"off": {}, "sink": {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}"},
                "nowhere": {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{nowhere_port}"}}
    try:
        with ExitStack() as stack:
            systems = {state: stack.enter_context(running_system(args.postgres, settings[state]))
                       for state in TRACING_STATES}
            print(f"{n} spends per round, {c} concurrent, {OVERHEAD_ROUNDS} rounds each of tracing off, exporting "
                  f"to a sink and to nowhere, alternating, three systems side by side, {backend_name(args)}, "
                  f"2-core machine")
            spenders = warmed_spenders(systems, "Tracing", n, c)
            rounds, cpu = {state: [] for state in systems}, {state: [] for state in systems}
            by_process = {state: [] for state in systems}
            for round_number in range(OVERHEAD_ROUNDS):
                # Each round starts with another state: none is always measured first (or just after another).
                turn = round_number % len(TRACING_STATES)
                for state in TRACING_STATES[turn:] + TRACING_STATES[:turn]:
                    result, used = measured(systems[state], spenders[state], n, c)
                    rounds[state].append(result)
                    cpu[state].append(sum(used.values()))
                    by_process[state].append(used)
            medians = {state: sorted(rounds[state], key=lambda r: r[0])[OVERHEAD_ROUNDS // 2] for state in systems}
            for state in systems:
                report(f"HTTP POST usage, {c} concurrent, tracing {state} (median of {OVERHEAD_ROUNDS})",
                       *medians[state])
            off = medians["off"]
            for state in ("sink", "nowhere"):
                print(f"  tracing to {state}: {medians[state][0] / off[0]:.3f}x the throughput with tracing off, "
                      f"p99 {percentile(medians[state][1], 99):.0f} vs {percentile(off[1], 99):.0f} ms")
            print("  rounds: " + "; ".join(f"{state} {[round(r[0], 1) for r in rounds[state]]}/s" for state in systems))
            print("  CPU per spend, every process (median): " + ", ".join(
                f"{state} {median(cpu[state]):.2f} ms" for state in systems))
            busy = sorted(by_process["off"][0], key=lambda name: -by_process["off"][0][name])[:6]
            print("  by process (median, ms, off/sink/nowhere): " + "; ".join(
                f"{name} " + "/".join(f"{median(r.get(name, 0) for r in by_process[state]):.2f}" for state in systems)
                for name in busy))
    finally:
        sink.terminate()
        print(f"  {sink.communicate(timeout=10)[0].strip()}")


def spender(api, url, org_id, agent_id):
    return lambda: post_spend(api, url, org_id, agent_id).raise_for_status()


@contextmanager
def scraping(system):
    """Every process of `system` (None: nothing) scraped every SCRAPE_EVERY seconds while the block runs.
    Yields a dict holding, afterwards, the number of pages read ("pages")."""
    figures, stopping = {"pages": 0}, []
    urls = [] if system is None else [system.url + "/metrics", *(f"http://127.0.0.1:{port}/metrics"
                                                                 for port in system.metrics_ports.values())]

    def loop():
        session = requests.Session()
        while not stopping:
            for url in urls:
                session.get(url, timeout=10).raise_for_status()
                figures["pages"] += 1
            eventlet.sleep(SCRAPE_EVERY)

    thread = eventlet.spawn(loop) if urls else None
    try:
        yield figures
    finally:
        stopping.append(True)
        if thread is not None:
            thread.wait()


def main():
    args = arguments("spends", 1000, 20, switches={
        "--metrics-overhead": "only spends with metrics on against off (two systems, alternating rounds)",
        "--tracing-overhead": "only spends with tracing off, to a sink, to nowhere (three systems, alternating)",
        "--targets": "only issue 27's figures, SQLite and PostgreSQL side by side (bench/spend_targets.py)"})
    if args.metrics_overhead:
        return metrics_overhead(args)
    if args.targets:
        from spend_targets import targets
        return targets(args.spends, args.concurrency)
    if args.tracing_overhead:
        return tracing_overhead(args)
    with running_system(args.postgres) as system:
        url, n, c = system.url, args.spends, args.concurrency
        owner, member, revoked = client("owner"), member_client(url, "member"), member_client(url, "revoked")
        org, agent = organization_with_credit(url, owner, "Bench", [member, revoked])
        print(f"{n} spends per figure, {c} concurrent, one process per service, {backend_name(args)}, 2-core machine")

        config = {"AMQP_URI": system.env["AMQP_URI"]}
        with ClusterRpcProxy(config) as rpc:
            rpc.credits.ping()
            rpc_rate, rpc_latencies = timed(rpc.credits.ping, n, 1)
        report("bare RPC credits.ping (sequential, reused proxy)", rpc_rate, rpc_latencies)
        with proxy_pool(config, c) as checkout:
            concurrent_ping = timed(lambda: checkout(lambda rpc: rpc.credits.ping()), n, c)
        report(f"bare RPC credits.ping ({c} concurrent, a proxy each)", *concurrent_ping)

        def spend_as(api, org_id, agent_id):
            return lambda: post_spend(api, url, org_id, agent_id).raise_for_status()

        sequential = timed(spend_as(member, org, agent), n // 2, 1)
        report("HTTP POST usage, sequential", *sequential)
        cpu_before = process_cpu(system)
        gateway = timed(spend_as(member, org, agent), n, c)
        cpu_after = process_cpu(system)
        report(f"HTTP POST usage, one org, {c} concurrent", *gateway)
        report_cpu(f"CPU per spend at {c} concurrent, by process", cpu_before, cpu_after, n)

        # The same spends made by an API key for the member (SPEC §9): the key is verified with members once,
        # then kept by the gateway (gateway.known_keys), so the path is the JWT's.
        runtime = key_client(url, owner, org)
        by_key = timed(lambda: post_spend(runtime, url, org, agent, member.user_id).raise_for_status(), n, c)
        report(f"HTTP POST usage by API key, one org, {c} concurrent", *by_key)
        print(f"  spends by API key: {by_key[0] / gateway[0]:.2f}x the throughput with a JWT (goal >= 0.9x), p99 "
              f"{percentile(by_key[1], 99):.0f} vs {percentile(gateway[1], 99):.0f} ms")

        context = context_data(Identity(member.user_id, member.email, "Member"))
        with proxy_pool(config, c, context) as checkout:
            direct = timed(lambda: checkout(lambda rpc: rpc.credits.spend(org, agent, "0.0125", uuid.uuid4().hex)),
                           n, c)
        report("RPC credits.spend, one org (no HTTP)", *direct)

        # Twenty organizations: spends of different organizations do not wait for each other's lock.
        spread = [organization_with_credit(url, owner, f"Spread {i}") for i in range(20)]
        spenders = iter(range(10 ** 9))
        spread_rate = timed(lambda: spend_as(owner, *spread[next(spenders) % len(spread)])(), n, c)
        report("HTTP POST usage, 20 orgs round-robin (owner)", *spread_rate)

        # Auto top-up on (SPEC §11): credits says when a spend leaves the balance at or below the threshold
        # (credits.balance_low) and billing tops up from that event (here after about 400 spends); the spend
        # path itself gains nothing. Rounds alternate off and on, each on fresh organizations (so each "on"
        # round crosses its threshold and tops up once), and the medians are compared: one run of each,
        # one after the other, differs by more than the 5 % looked for.
        def topped_up_organization(name):
            org_id, agent_id = organization_with_credit(url, owner, name)
            owner.post(f"{url}/v1/organizations/{org_id}/payment-methods",
                       json={"provider_payment_method_id": "pm_card_visa"}).raise_for_status()
            owner.put(f"{url}/v1/organizations/{org_id}/auto-topup",
                      json={"enabled": True, "threshold": "999995", "target": "1000500"}).raise_for_status()
            return org_id, agent_id

        rounds, topped_orgs = {"off": [], "on": []}, []
        for round_number in range(3):
            plain_org = organization_with_credit(url, owner, f"Without auto top-up {round_number}")
            topped_orgs.append(topped_up_organization(f"With auto top-up {round_number}"))
            rounds["off"].append(timed(spend_as(owner, *plain_org), n, c))
            rounds["on"].append(timed(spend_as(owner, *topped_orgs[-1]), n, c))
        plain, topped = (sorted(rounds[k], key=lambda r: r[0])[1] for k in ("off", "on"))   # the median round
        report(f"HTTP POST usage, one org, {c} concurrent, auto top-up off (owner, median of 3)", *plain)
        report(f"HTTP POST usage, one org, {c} concurrent, auto top-up on (owner, median of 3)", *topped)
        topups = [[t["status"] for t in owner.get(f"{url}/v1/organizations/{org_id}/transactions",
                                                  params={"type": "auto_topup"}).json()["items"]]
                  for org_id, _ in topped_orgs]
        print(f"  auto top-up on: {topped[0] / plain[0]:.2f}x the throughput without (goal >= 0.95x), p99 "
              f"{percentile(topped[1], 99):.0f} vs {percentile(plain[1], 99):.0f} ms; rounds off "
              f"{[round(r[0], 1) for r in rounds['off']]}/s, on {[round(r[0], 1) for r in rounds['on']]}/s; "
              f"top-ups per round: {topups}")

        dry = lambda: member.post(f"{url}/v1/organizations/{org}/usage",  # noqa: E731
                                  json={"agent_id": agent, "amount": "1", "dry_run": True}).raise_for_status()
        report("HTTP POST usage dry_run", *timed(dry, n // 2, c))

        print(f"  overhead of the spend path: sequential p50 {median(sequential[1]) / median(rpc_latencies):.0f}x a "
              f"bare RPC round trip; {c} concurrent: {concurrent_ping[0] / gateway[0]:.1f}x fewer per second")
        spends = n // 2 + 3 * n
        balance = owner.get(f"{url}/v1/organizations/{org}/credits").json()["balance"]
        print(f"  balance after {spends} spends of 0.0125 from 1000000: {balance} "
              f"(expected {Decimal(1000000) - spends * Decimal('0.0125'):.4f})")

        # Under load: `c` clients spend in the organization while one spend at a time is traced into the
        # audit trail, then while the owner takes the agent away from a second member and gives it back.
        with background_load(spend_as(member, org, agent), c) as load:
            audit = audit_lags(url, client("member"), owner, org, agent, AUDIT_PROBES)
            revocation, refusals, accepted_after = revocation_lags(url, owner, revoked, org, agent, REVOCATIONS)
        print(f"  under a load of {c} concurrent spenders ({load['rate']:.0f} spends/s while measured):")
        report_lag("spend 201 -> its entry in the audit trail", audit)
        report_lag("agent unassigned (204) -> spend refused", revocation)
        print(f"    of which the refused request itself: p50 {median(refusals):.2f} ms; spends still accepted after "
              f"the 204: {sum(accepted_after)} in {len(accepted_after)} revocations (at most {max(accepted_after)})")

        # The framework ceiling on the same broker, the system idle beside it.
        ceiling = run_ceiling(system.env["AMQP_URI"], n, c)
        report_ceiling(ceiling, c)
        (ceiling_rate, ceiling_latencies), ceiling_sequential = ceiling["concurrent"], ceiling["sequential"][1]
        print(f"  spend against the ceiling: {c} concurrent {gateway[0] / ceiling_rate:.2f}x its throughput "
              f"(goal >= 0.5x);\n    p99 {percentile(gateway[1], 99):.0f} ms, the ceiling's "
              f"{percentile(ceiling_latencies, 99):.0f} ms (goal <= 100 ms); sequential p50 "
              f"{median(sequential[1]):.1f} ms, {median(sequential[1]) / median(ceiling_sequential):.1f}x the "
              f"ceiling's (goal <= 3x)")


if __name__ == "__main__":
    main()
