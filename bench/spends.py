"""The spend path (POST /v1/organizations/{org}/usage) through the gateway, beside a bare Nameko RPC
round trip measured in the same run, so its overhead is a ratio. Also: spends straight over RPC
(credits.spend: the path minus HTTP), spends spread over many organizations (no shared account
lock) and the dry run. Prints figures; asserts nothing. Starts its own broker and system (SQLite, or
PostgreSQL with --postgres).

A spend is: gateway -> credits -> orgs (may the caller use the agent?) -> members (their roles), then
one write transaction in credits under the organization's account lock (replay check, expiries,
budget, grants drawn, ledger entry, usage, outbox event), then the audit event relayed afterwards.

    .venv/bin/python bench/spends.py [--spends 1000] [--concurrency 20] [--postgres]
"""
import eventlet

eventlet.monkey_patch()  # noqa: E402

import uuid
from contextlib import ExitStack, contextmanager
from decimal import Decimal
from statistics import median

import eventlet.queue
from harness import arguments, backend_name, client, report, running_system, timed  # noqa: E402
from nameko.standalone.rpc import ClusterRpcProxy

from common.auth import Identity, context_data  # noqa: E402


def organization_with_credit(url, owner, name, member=None):
    """An organization with plenty of credit and an agent (assigned to `member`, who joins)."""
    org = owner.post(f"{url}/v1/organizations", json={"name": name}).json()["id"]
    owner.post(f"{url}/v1/organizations/{org}/credits/grants", json={"amount": "1000000", "type": "paid"}
               ).raise_for_status()
    agent = owner.post(f"{url}/v1/organizations/{org}/agents", json={"name": "Bench agent"}).json()["id"]
    if member is not None:
        invitation = owner.post(f"{url}/v1/organizations/{org}/invitations",
                                json={"email": member.email, "roles": ["member"]}).json()
        member.post(f"{url}/v1/invitations/{invitation['id']}/accept").raise_for_status()
        owner.put(f"{url}/v1/organizations/{org}/agents/{agent}/assignees/{member.user_id}").raise_for_status()
        group = owner.post(f"{url}/v1/organizations/{org}/budget-groups",
                           json={"name": "Bench", "monthly_limit": "1000000"}).json()["id"]
        owner.put(f"{url}/v1/organizations/{org}/budget-groups/{group}/members/{member.user_id}").raise_for_status()
    return org, agent


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


def main():
    args = arguments("spends", 1000, 20)
    with running_system(args.postgres) as system:
        url, n, c = system.url, args.spends, args.concurrency
        owner, member = client("owner"), client("member")
        member.user_id, member.email = "member", "member@example.com"     # what client() puts in the token
        member.get(f"{url}/v1/me").raise_for_status()
        org, agent = organization_with_credit(url, owner, "Bench", member)
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
            def spend():
                api.post(f"{url}/v1/organizations/{org_id}/usage", json={"agent_id": agent_id, "amount": "0.0125"},
                         headers={"Idempotency-Key": uuid.uuid4().hex}).raise_for_status()
            return spend

        sequential = timed(spend_as(member, org, agent), n // 2, 1)
        report("HTTP POST usage, sequential", *sequential)
        gateway = timed(spend_as(member, org, agent), n, c)
        report(f"HTTP POST usage, one org, {c} concurrent", *gateway)

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

        dry = lambda: member.post(f"{url}/v1/organizations/{org}/usage",  # noqa: E731
                                  json={"agent_id": agent, "amount": "1", "dry_run": True}).raise_for_status()
        report("HTTP POST usage dry_run", *timed(dry, n // 2, c))

        print(f"  overhead of the spend path: sequential p50 {median(sequential[1]) / median(rpc_latencies):.0f}x a "
              f"bare RPC round trip; {c} concurrent: {concurrent_ping[0] / gateway[0]:.1f}x fewer per second")
        spends = n // 2 + 2 * n
        balance = owner.get(f"{url}/v1/organizations/{org}/credits").json()["balance"]
        print(f"  balance after {spends} spends of 0.0125 from 1000000: {balance} "
              f"(expected {Decimal(1000000) - spends * Decimal('0.0125'):.4f})")


if __name__ == "__main__":
    main()
