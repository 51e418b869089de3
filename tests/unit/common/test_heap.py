"""common.heap: a started service's objects are out of the garbage collector's sight."""
import gc

from common.heap import FrozenStartupHeap


def test_starting_freezes_what_exists_and_workers_get_nothing():
    try:
        FrozenStartupHeap().start()
        assert gc.get_freeze_count() > 0
        assert FrozenStartupHeap().get_dependency(None) is None
    finally:
        gc.unfreeze()
