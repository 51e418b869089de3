"""Throughput and latency through the gateway, beside a bare Nameko RPC round trip measured in the
same run, so the overhead of a path is a ratio rather than a number from another day. Prints figures;
asserts nothing. Starts its own broker and system (SQLite, or PostgreSQL with --postgres).

    .venv/bin/python bench/gateway_latency.py [--requests 2000] [--concurrency 20] [--postgres]
"""
import eventlet

eventlet.monkey_patch()  # noqa: E402

import statistics
import time

from harness import arguments, backend_name, client, report, running_system, timed  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402


def report_audit_delay(session, url, org_id, count):
    """Time from a rename's 200 until its entry is readable in the audit trail (outbox -> relay ->
    broker -> audit -> database), one change at a time."""
    delays = []
    for i in range(count):
        name = f"Traced {i}"
        session.patch(f"{url}/v1/organizations/{org_id}", json={"name": name}).raise_for_status()
        acknowledged = time.perf_counter()
        while True:
            page = session.get(f"{url}/v1/organizations/{org_id}/audit", params={"limit": 1}).json()
            if page["items"] and page["items"][0]["changes"][0]["new_value"] == name:
                break
            eventlet.sleep(0.002)
        delays.append((time.perf_counter() - acknowledged) * 1000)
    q = statistics.quantiles(delays, n=100)
    print(f"  {'change acknowledged -> in the audit trail':44s} {'':10s} p50 {q[49]:7.2f} ms   p99 {q[98]:7.2f} ms")


def main():
    args = arguments("requests", 2000, 20)
    with running_system(args.postgres) as system:
        session = client("bench")
        session.post(system.url + "/v1/organizations", json={"name": "Bench"}).raise_for_status()
        n, c = args.requests, args.concurrency
        print(f"{n} calls each, {c} concurrent, one process per service, {backend_name(args)}, 2-core machine")

        with ClusterRpcProxy({"AMQP_URI": system.env["AMQP_URI"]}) as rpc:
            rpc.orgs.ping()
            report("bare RPC orgs.ping (sequential, reused proxy)", *timed(rpc.orgs.ping, n // 4, 1))
        health = lambda: session.get(system.url + "/openapi.json").raise_for_status()   # noqa: E731
        report("HTTP GET /openapi.json (no RPC)", *timed(health, n, c))
        listing = lambda: session.get(system.url + "/v1/organizations").raise_for_status()  # noqa: E731
        report("HTTP GET /v1/organizations (2 RPC hops)", *timed(listing, n, c))
        rename_count = iter(range(10 ** 9))
        org_id = session.get(system.url + "/v1/organizations").json()["items"][1]["id"]
        rename = lambda: session.patch(system.url + f"/v1/organizations/{org_id}",  # noqa: E731
                                       json={"name": f"Bench {next(rename_count)}"}).raise_for_status()
        report("HTTP PATCH rename (write + outbox + audit)", *timed(rename, n // 2, c))
        report_audit_delay(session, system.url, org_id, count=50)


if __name__ == "__main__":
    main()
