"""Webhooks (SPEC §12): how many deliveries per second reach a fast local receiver, and what subscribing costs
the spend path (it never waits for webhooks: the webhooks service consumes the spends' events on its own).
Prints figures; asserts nothing. Starts its own broker and system (SQLite, or PostgreSQL with --postgres).

- delivery rate: the webhooks service stopped while N renames of an organization whose endpoint subscribes
  to `*` pile up in its queue; started again, the time until the receiver has every one (consumed, stored,
  signed, sent, recorded);
- spends: HTTP POST usage, C concurrent, in an organization without endpoints and in one with 3 endpoints
  subscribed to `*` (3 deliveries per spend), rounds alternating, median of 3 (goal: within 10 %).

    .venv/bin/python bench/webhooks.py [--events 500] [--concurrency 20] [--postgres]
"""
import eventlet

eventlet.monkey_patch()  # noqa: E402

import time
import uuid

from harness import arguments, backend_name, client, percentile, report, running_system, timed  # noqa: E402

from devtools.webhook_receiver import Receiver

SETTINGS = {"WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "true"}


def organization(url, owner, name, endpoints=()):
    org = owner.post(f"{url}/v1/organizations", json={"name": name}).json()["id"]
    owner.post(f"{url}/v1/organizations/{org}/credits/grants", json={"amount": "1000000", "type": "paid"}
               ).raise_for_status()
    agent = owner.post(f"{url}/v1/organizations/{org}/agents", json={"name": "Bench agent"}).json()["id"]
    for receiver in endpoints:
        owner.post(f"{url}/v1/organizations/{org}/webhooks",
                   json={"url": receiver.url, "event_types": ["*"]}).raise_for_status()
    return org, agent


def main():
    args = arguments("events", 500, 20)
    n, c = args.events, args.concurrency
    receivers = [Receiver() for _ in range(3)]
    with running_system(args.postgres, SETTINGS) as system:
        url, owner = system.url, client("bench-owner")
        print(f"webhooks, {backend_name(args)}, one process per service, 2-core machine")

        org, _ = organization(url, owner, "Renamed", receivers[:1])
        time.sleep(1)
        before = len(receivers[0].received)
        system.stop("webhooks")
        renames = iter(range(10 ** 9))
        timed(lambda: owner.patch(f"{url}/v1/organizations/{org}",
                                  json={"name": f"Renamed {next(renames)}"}).raise_for_status(), n, c)
        started = time.perf_counter()
        system.start("webhooks")
        while len(receivers[0].received) < before + n:
            time.sleep(0.01)
        took = time.perf_counter() - started
        first, last = receivers[0].times[before], receivers[0].times[before + n - 1]
        print(f"  {n} events piled up, then delivered to one endpoint: {(n - 1) / (last - first):.0f} deliveries/s "
              f"from the first to the last ({took:.1f} s from the service's start, its start-up included)")

        def spend(org_id, agent_id):
            return lambda: owner.post(f"{url}/v1/organizations/{org_id}/usage",
                                      json={"agent_id": agent_id, "amount": "0.0125"},
                                      headers={"Idempotency-Key": uuid.uuid4().hex}).raise_for_status()
        rounds = {"none": [], "three": []}
        for number in range(3):
            plain = organization(url, owner, f"No endpoints {number}")
            hooked = organization(url, owner, f"Three endpoints {number}", receivers)
            rounds["none"].append(timed(spend(*plain), n, c))
            rounds["three"].append(timed(spend(*hooked), n, c))
        plain, hooked = (sorted(rounds[k], key=lambda r: r[0])[1] for k in ("none", "three"))
        report(f"HTTP POST usage, {c} concurrent, no endpoints (median of 3)", *plain)
        report(f"HTTP POST usage, {c} concurrent, 3 endpoints on * (median of 3)", *hooked)
        print(f"  with 3 endpoints: {hooked[0] / plain[0]:.2f}x the throughput without (goal >= 0.90x), p99 "
              f"{percentile(hooked[1], 99):.0f} vs {percentile(plain[1], 99):.0f} ms; rounds none "
              f"{[round(r[0], 1) for r in rounds['none']]}/s, three {[round(r[0], 1) for r in rounds['three']]}/s")
        deadline = time.monotonic() + 60
        while sum(len(r.received) for r in receivers) < 3 * 3 * n and time.monotonic() < deadline:
            time.sleep(0.1)
        print(f"  deliveries received for the spends: {sum(len(r.received) for r in receivers[1:])} + "
              f"{len(receivers[0].received)} on the first receiver (of {3 * 3 * n} spends' events and the renames)")
    for receiver in receivers:
        receiver.stop()


if __name__ == "__main__":
    main()
