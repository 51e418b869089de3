"""Does the PostgreSQL driver cooperate with eventlet? Prints figures; asserts nothing.

N green threads each run `SELECT pg_sleep(D)` on their own connection. If the driver yields to the
eventlet hub while waiting (psycopg2 + psycogreen, as common.db sets up), the queries overlap and the
wall time is about D. If it blocks (plain psycopg2), they run one after another: about N x D.

    PYTHONPATH=. .venv/bin/python bench/db_driver_cooperation.py [N] [D]
"""
import os

import eventlet

# As services run: everything patched (eventlet also greens psycopg2 itself). The "blocking" run
# leaves psycopg2 alone to show what an uncooperative driver costs.
eventlet.monkey_patch(psycopg=os.environ.get("BENCH_CHILD") != "blocking")  # noqa: E402


import subprocess
import sys
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20
D = float(sys.argv[2]) if len(sys.argv) > 2 else 0.2


def measure(url, patched):
    if patched:
        import common.db  # noqa: F401  (applies psycogreen's patch, as every service does)
    from sqlalchemy import create_engine, text
    engine = create_engine(url, pool_size=N, max_overflow=0)

    def one():
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_sleep(:d)"), {"d": D})

    pool = eventlet.GreenPool(N)
    with engine.connect():
        pass                       # connect once before timing
    started = time.perf_counter()
    for _ in range(N):
        pool.spawn(one)
    pool.waitall()
    return time.perf_counter() - started


def main():
    if os.environ.get("BENCH_CHILD"):
        print(f"{measure(os.environ['BENCH_URL'], os.environ['BENCH_CHILD'] == 'patched'):.3f}")
        return
    from devtools.postgres import PostgresCluster
    cluster = PostgresCluster().start()
    try:
        url = cluster.create_database("bench")
        print(f"{N} concurrent queries of pg_sleep({D}) in one eventlet process")
        for mode in ("patched", "blocking"):
            out = subprocess.run([sys.executable, __file__, str(N), str(D)], capture_output=True, text=True,
                                 env=dict(os.environ, BENCH_CHILD=mode, BENCH_URL=url), check=True)
            wall = float(out.stdout.strip().splitlines()[-1])
            label = "psycopg2, green (as services run)" if mode == "patched" else "psycopg2, blocking C driver"
            print(f"  {label:36s} wall {wall:6.3f} s   overlap {N * D / wall:5.1f}x  (ideal {N}x)")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
