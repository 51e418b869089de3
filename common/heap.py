"""`FrozenStartupHeap`: once a service process has started, everything it built to get there (modules,
SQLAlchemy's and marshmallow's metadata, Nameko's extensions) is moved out of the garbage collector's
sight (gc.freeze). Those objects live as long as the process; left in view, every full collection walks
them all again, and under load such a pause lands on whichever requests are in flight. Measured with
bench/spends.py on SQLite, twice: p99 of 20 concurrent spends 113 ms frozen against 139 ms not (105
against 112 ms in an earlier run), throughput the same."""
import gc

from nameko.extensions import DependencyProvider


class FrozenStartupHeap(DependencyProvider):
    """Declare it on a service class; it gives workers nothing."""

    def start(self):
        gc.collect()        # what start-up left as garbage goes first, so that it is not kept forever
        gc.freeze()

    def get_dependency(self, worker_ctx):
        return None
