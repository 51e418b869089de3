"""common.handled_requests through the command pipeline's unit of work (common.unit_of_work), on a migrated
SQLite store: the first write transaction of an RPC request records it; a second delivery of the request
cannot write; a transaction that rolled back records nothing, so the request's next write does."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from common import handled_requests
from common.db import Database
from common.errors import ServiceUnavailable
from common.timeutil import utcnow
from common.unit_of_work import UnitOfWork
from services.credits.models import Account, HandledRequest

TABLES = Database(handled_requests=HandledRequest)


@pytest.fixture
def store(make_store):
    return make_store("credits")


def serve(store, request_id, account_id, fail=False):
    """What a command serving RPC request `request_id` does: a write transaction, then another."""
    uow = UnitOfWork(store.for_request(request_id), TABLES)
    with uow.write() as session:
        session.add(Account(organization_id=account_id, balance=0, updated_at=utcnow()))
        if fail:
            raise RuntimeError("the command failed")
    with uow.write() as session:          # a second write of the same command: no second record
        session.get(Account, account_id).balance = 1


def count(store, model):
    with store.read() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_a_request_delivered_again_after_its_change_committed_cannot_write(store):
    serve(store, "request-1", "org-1")
    with pytest.raises(ServiceUnavailable) as interrupted:
        serve(store, "request-1", "org-2")
    assert interrupted.value.code == "request_interrupted"
    assert (count(store, Account), count(store, HandledRequest)) == (1, 1)     # org-2 never written
    serve(store, "request-2", "org-2")                                          # another request does
    assert count(store, Account) == 2


def test_a_request_whose_write_rolled_back_runs_when_delivered_again(store):
    with pytest.raises(RuntimeError):
        serve(store, "request-1", "org-1", fail=True)
    assert count(store, HandledRequest) == 0
    serve(store, "request-1", "org-1")
    assert (count(store, Account), count(store, HandledRequest)) == (1, 1)


def test_workers_that_serve_no_rpc_request_record_nothing(store):
    with UnitOfWork(store, TABLES).write() as session:      # an event consumer, a timer: no request id
        session.add(Account(organization_id="org-1", balance=0, updated_at=utcnow()))
    assert count(store, HandledRequest) == 0


def test_records_older_than_a_day_are_pruned(store):
    serve(store, "request-1", "org-1")
    with store.write() as session:
        session.get(HandledRequest, "request-1").handled_at = utcnow() - timedelta(days=2)
    serve(store, "request-2", "org-2")
    assert handled_requests.prune(store, HandledRequest) == 1
    with store.read() as session:
        assert [r.request_id for r in session.scalars(select(HandledRequest))] == ["request-2"]
