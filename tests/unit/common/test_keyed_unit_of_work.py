"""The one way to write under an Idempotency-Key (common.unit_of_work.UnitOfWork.run, which the command
pipeline runs) and to settle a race on a unique key (common.db.retry_on_unique_race), over a migrated SQLite
store of the orgs service."""
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from common import idempotency
from common.db import Database, retry_on_unique_race
from common.errors import Conflict, ValidationFailed
from common.unit_of_work import UnitOfWork
from services.orgs.models import IdempotentRequest

TABLES = Database(idempotent_requests=IdempotentRequest)


def keyed_write(store, user_id, key, operation, work):
    return UnitOfWork(store, TABLES, user_id, key, operation).run(work)


@pytest.fixture
def store(make_store):
    return make_store("orgs")


def stored_keys(store):
    with store.read() as session:
        return session.scalar(select(func.count()).select_from(IdempotentRequest))


def test_a_keyed_write_runs_once_and_replays_its_answer_marked(store):
    runs = []

    def work(session):
        runs.append(1)
        return {"id": "thing-1"}
    first = keyed_write(store, "alice", "k1", "make:abc", work)
    again = keyed_write(store, "alice", "k1", "make:abc", work)
    assert first == {"id": "thing-1"} and again == {"id": "thing-1", idempotency.REPLAYED: True}
    assert runs == [1]
    other_user = keyed_write(store, "bob", "k1", "make:abc", work)
    assert other_user == {"id": "thing-1"} and runs == [1, 1]        # keys are per user


def test_the_same_key_with_another_request_is_a_409_and_no_key_writes_every_time(store):
    keyed_write(store, "alice", "k1", "make:abc", lambda session: {"n": 1})
    with pytest.raises(Conflict) as reused:
        keyed_write(store, "alice", "k1", "make:other", lambda session: {"n": 2})
    assert reused.value.code == "idempotency_key_reused"
    for _ in range(2):
        assert keyed_write(store, "alice", None, "make:abc", lambda session: {"n": 3}) == {"n": 3}
    assert stored_keys(store) == 1


def test_a_refused_write_stores_no_answer_so_a_corrected_retry_runs(store):
    def refuse(session):
        raise ValidationFailed("no", field="name")
    with pytest.raises(ValidationFailed):
        keyed_write(store, "alice", "k1", "make:abc", refuse)
    assert stored_keys(store) == 0
    answer = keyed_write(store, "alice", "k1", "make:abc", lambda s: {"ok": 1})
    assert answer == {"ok": 1}


def test_a_race_on_a_unique_key_runs_the_attempt_once_more_and_a_second_clash_propagates():
    attempts = []

    def loses_once():
        attempts.append(1)
        if len(attempts) == 1:
            raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))
        return "decided again"
    assert retry_on_unique_race(loses_once) == "decided again" and len(attempts) == 2

    def always_clashes():
        raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))
    with pytest.raises(IntegrityError):
        retry_on_unique_race(always_clashes)

