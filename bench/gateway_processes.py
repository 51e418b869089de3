"""Spends per second with one gateway process and with two on the same port (GATEWAY_PROCESSES, issue 24),
each on a fresh system of its own, one after the other, three rounds each alternating (a drift of the
shared machine weighs on both). On this 2-core machine the services and the broker share the cores with
the gateways, so the figure says what a second gateway process buys here, not on a bigger machine.

    .venv/bin/python bench/gateway_processes.py [--spends 1000] [--concurrency 20] [--postgres]

Prints figures; asserts nothing."""
import os
import sys
from statistics import median

sys.path.insert(0, os.path.dirname(__file__))
from harness import arguments, backend_name, percentile, report, running_system  # noqa: E402
from spends import measured, warmed_spenders  # noqa: E402

ROUNDS = 3
PROCESSES = (1, 2)


def main():
    args = arguments("spends", 1000, 20, __doc__)
    n, c = args.spends, args.concurrency
    print(f"{n} spends per round, {c} concurrent, {ROUNDS} rounds of each, GATEWAY_PROCESSES {PROCESSES}, "
          f"{backend_name(args)}, 2-core machine")
    rounds = {count: [] for count in PROCESSES}
    cpu = {count: [] for count in PROCESSES}
    for _ in range(ROUNDS):
        for count in PROCESSES:
            with running_system(args.postgres, {"GATEWAY_PROCESSES": str(count)}) as system:
                [spend] = warmed_spenders({count: system}, "Gateways", n, c).values()
                result, used = measured(system, spend, n, c)
                rounds[count].append(result)
                cpu[count].append(sum(ms for name, ms in used.items() if name.startswith("gateway")))
    for count in PROCESSES:
        middle = sorted(rounds[count], key=lambda r: r[0])[ROUNDS // 2]
        report(f"HTTP POST usage, {c} concurrent, {count} gateway process(es) (median)", *middle)
        print(f"    rounds {[round(r[0], 1) for r in rounds[count]]}/s; gateway CPU per spend "
              f"{median(cpu[count]):.2f} ms; p99 {percentile(middle[1], 99):.0f} ms")
    one, two = (median(r[0] for r in rounds[count]) for count in PROCESSES)
    print(f"  two gateway processes: {two / one:.2f}x the throughput of one")


if __name__ == "__main__":
    main()
