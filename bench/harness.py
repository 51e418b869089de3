"""What every benchmark shares: its arguments, a private system to measure, signed-in clients, timing
and the printed figures. Benchmarks print figures and assert nothing."""
import argparse
import os
import statistics
import subprocess
import tempfile
import time
from contextlib import contextmanager

import eventlet
import requests

from common.config import SERVICES
from devtools.system import Broker, System, free_broker_port, free_port
from gateway import tokens


def arguments(count_flag, count, concurrency, description=None, switches=None):
    """--<count_flag> N --concurrency C --postgres, and the benchmark's own `switches` ({"--flag": help}), parsed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(f"--{count_flag}", type=int, default=count)
    parser.add_argument("--concurrency", type=int, default=concurrency)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL databases instead of SQLite")
    for flag, help in (switches or {}).items():
        parser.add_argument(flag, action="store_true", help=help)
    return parser.parse_args()


@contextmanager
def running_system(postgres=False, settings=None, count_statements=False, broker_nodes=1):
    """A private broker (a cluster of `broker_nodes`) and the whole system (PostgreSQL databases with
    `postgres`, environment `settings` added), stopped afterwards; `system.postgres_cluster` is the cluster
    (None on SQLite), with pg_stat_statements loaded when `count_statements`."""
    workdir = tempfile.mkdtemp(prefix="orgplatform-bench-")
    broker = Broker(f"{workdir}/rabbitmq", free_broker_port(broker_nodes), broker_nodes).start()
    cluster, env = None, {}
    try:
        if postgres:
            from devtools.postgres import PostgresCluster
            cluster = PostgresCluster(count_statements=count_statements).start()
            env = {f"{s.upper()}_DATABASE_URL": cluster.create_database(s) for s in SERVICES}
        # One gateway process unless the benchmark says otherwise (make run's default is one per core), so
        # figures stay comparable with those measured before GATEWAY_PROCESSES.
        system = System(workdir, broker.amqp_uri, free_port(),
                        dict(env, LOCALSTRIPE_PORT=str(free_port()), **{"GATEWAY_PROCESSES": "1", **(settings or {})}))
        system.postgres_dir = cluster.dir if cluster else None      # for process_cpu
        system.postgres_cluster = cluster
        try:
            yield system.start_all()
        finally:
            system.stop_all()
    finally:
        broker.stop()
        if cluster:
            cluster.stop()


def process_cpu(system):
    """CPU seconds used so far by each process of the system, by its broker's Erlang VM and, on PostgreSQL,
    by the database server (from /proc)."""
    pids = {name: process.pid for name, process in system.processes.items()}
    beams = subprocess.run(["pgrep", "-f", f"beam.smp.*{system.data_dir}"], capture_output=True, text=True)
    used = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    if beams.stdout.split():                # a cluster's nodes together
        used["rabbitmq"] = sum(_cpu_seconds(int(pid)) or 0.0 for pid in beams.stdout.split())
    postgres_dir = getattr(system, "postgres_dir", None)
    if postgres_dir is not None:
        # The server: the postmaster and its children (a backend per pooled connection, the WAL writer...).
        postmaster = int((postgres_dir / "data" / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
        used["postgres"] = sum(_cpu_seconds(int(pid)) for pid in [postmaster, *children])
    return {name: seconds for name, seconds in used.items() if seconds is not None}


def _cpu_seconds(pid):
    """utime + stime of a process so far, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def report_cpu(label, before, after, count):
    """Milliseconds of CPU per operation in each process between two process_cpu() readings."""
    per = {name: (after[name] - before[name]) * 1000 / count for name in after if name in before}
    parts = ", ".join(f"{name} {ms:.1f}" for name, ms in sorted(per.items(), key=lambda item: -item[1]))
    print(f"  {label}: {sum(per.values()):.1f} ms CPU each ({parts})")


def backend_name(args):
    return "PostgreSQL" if args.postgres else "SQLite"


def client(sub):
    """An HTTP session signed in as user `sub` (email sub@example.com)."""
    session = requests.Session()
    session.headers["Authorization"] = "Bearer " + tokens.mint(sub, f"{sub}@example.com", sub.title())
    return session


def timed(fn, count, concurrency):
    """Run fn `count` times on `concurrency` green threads; (calls per second, latencies in ms)."""
    latencies = []

    def one(_):
        started = time.perf_counter()
        fn()
        latencies.append((time.perf_counter() - started) * 1000)

    pool = eventlet.GreenPool(concurrency)
    started = time.perf_counter()
    for _ in pool.imap(one, range(count)):
        pass
    return count / (time.perf_counter() - started), latencies


@contextmanager
def background_load(fn, concurrency):
    """`concurrency` green threads calling fn over and over while the block runs (a call that fails ends
    the block with its error). Yields a dict that holds, afterwards, "calls" and "rate" (calls per second)."""
    figures, stopping = {"calls": 0}, []

    def loop():
        while not stopping:
            fn()
            figures["calls"] += 1

    threads = [eventlet.spawn(loop) for _ in range(concurrency)]
    started = time.perf_counter()
    try:
        yield figures
    finally:
        stopping.append(True)
        for thread in threads:
            thread.wait()
        figures["rate"] = figures["calls"] / (time.perf_counter() - started)


def percentile(latencies, p, method="exclusive"):
    """The p-th percentile (1-99) of `latencies` ("inclusive": never beyond the extremes of few samples)."""
    return statistics.quantiles(latencies, n=100, method=method)[p - 1]


def report(label, rate, latencies):
    print(f"  {label:44s} {rate:8.1f}/s   p50 {percentile(latencies, 50):7.2f} ms   "
          f"p99 {percentile(latencies, 99):7.2f} ms")


def report_lag(label, lags):
    """A line of delays (ms) with no rate: p50, p99 and the worst."""
    p50, p99 = percentile(lags, 50, "inclusive"), percentile(lags, 99, "inclusive")
    print(f"  {label:44s} {'':10s} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   max {max(lags):7.2f} ms   "
          f"({len(lags)} samples)")
