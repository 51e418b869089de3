"""Spends per second on one RabbitMQ node with classic queues (the default), on one node with quorum
queues, and on a 3-node cluster with quorum queues (BROKER_NODES=3, issue 24), each on a fresh system of its
own, one after the other, rounds alternating (a drift of the shared machine weighs on all). A spend is an
RPC request and its reply, and an event to five consumer queues: on quorum queues each is written to a
Raft log (and on a cluster replicated to a majority) before it is confirmed. On this 2-core machine the
three nodes share the cores with the services, so the figure is the quorum cost here, not on three machines.

    .venv/bin/python bench/broker_cluster.py [--spends 1000] [--concurrency 20] [--postgres]

Prints figures; asserts nothing."""
import os
import sys
from statistics import median

sys.path.insert(0, os.path.dirname(__file__))
from harness import arguments, backend_name, percentile, report, running_system  # noqa: E402
from spends import measured, warmed_spenders  # noqa: E402

ROUNDS = 2
SETUPS = {                                  # label -> (broker nodes, BROKER_QUEUE_TYPE)
    "one node, classic queues": (1, "classic"),
    "one node, quorum queues": (1, "quorum"),
    "3-node cluster, quorum queues": (3, "quorum"),
}


def main():
    args = arguments("spends", 1000, 20, __doc__)
    n, c = args.spends, args.concurrency
    print(f"{n} spends per round, {c} concurrent, {ROUNDS} rounds of each, {backend_name(args)}, 2-core machine")
    rounds = {label: [] for label in SETUPS}
    broker_cpu = {label: [] for label in SETUPS}
    for _ in range(ROUNDS):
        for label, (nodes, queue_type) in SETUPS.items():
            with running_system(args.postgres, {"BROKER_QUEUE_TYPE": queue_type}, broker_nodes=nodes) as system:
                # (The organization's name from the setup's number: a name takes no commas.)
                [spend] = warmed_spenders({list(SETUPS).index(label): system}, "Broker setup", n, c).values()
                result, used = measured(system, spend, n, c)
                rounds[label].append(result)
                broker_cpu[label].append(used.get("rabbitmq", 0.0))
    for label in SETUPS:
        middle = sorted(rounds[label], key=lambda r: r[0])[ROUNDS // 2]
        report(f"HTTP POST usage, {c} concurrent, {label} (median)", *middle)
        print(f"    rounds {[round(r[0], 1) for r in rounds[label]]}/s; broker CPU per spend "
              f"{median(broker_cpu[label]):.2f} ms; p99 {percentile(middle[1], 99):.0f} ms")
    base = median(r[0] for r in rounds["one node, classic queues"])
    for label in list(SETUPS)[1:]:
        print(f"  {label}: {median(r[0] for r in rounds[label]) / base:.2f}x the throughput of one node with "
              "classic queues")


if __name__ == "__main__":
    main()
