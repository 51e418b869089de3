"""One rule for reacting to an event once (common.inbox): the event's id recorded in the consumer's inbox
in the transaction of its effects, the effects run on the first delivery only; the same in every service
that consumes events, through its Nameko entrypoint."""
import importlib
import uuid
from datetime import timedelta

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import Integer, String, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common import inbox
from common.auth import SYSTEM_ACTOR
from common.db import Store
from common.events import change_event
from common.readmodels import membership_state
from common.timeutil import utcnow
from services.audit import reactions as audit_reactions
from services.audit.service import AuditService
from services.credits.service import CreditsService
from services.members.service import MembersService
from services.orgs.service import OrgsService


class Base(DeclarativeBase):
    pass


class ProcessedEvent(inbox.ProcessedEventMixin, Base):
    pass


class Effect(Base):
    """One row per run of an effect: what a test counts."""
    __tablename__ = "effects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36))


INBOX = inbox.Inbox(ProcessedEvent)


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'consumer.sqlite'}")
    Base.metadata.create_all(store.engine)
    return store


def event(kind="organization.renamed"):
    return {"event_id": str(uuid.uuid4()), "type": kind}


def note(session, event):
    session.add(Effect(event_id=event["event_id"]))


def effects(store):
    with store.read() as session:
        return sorted(session.scalars(select(Effect.event_id)))


def recorded(store):
    with store.read() as session:
        return sorted(session.scalars(select(ProcessedEvent.event_id)))


def test_a_redelivered_event_does_nothing(store):
    first = event()
    assert inbox.react_once(store, INBOX, first, note) is True
    assert inbox.react_once(store, INBOX, first, note) is False
    assert effects(store) == recorded(store) == [first["event_id"]]


def test_what_an_effect_asks_to_run_after_the_commit_runs_then_and_once(store):
    """An effect outside the database (billing charging a top-up it started) runs once the reaction is saved,
    and not again on a redelivery."""
    from common.unit_of_work import after_commit
    first, ran = event(), []

    def starts_something(session, event):
        note(session, event)
        after_commit(session, lambda: ran.append(effects(store)))     # sees the committed effect
    for _ in range(2):
        inbox.react_once(store, INBOX, first, starts_something)
    assert ran == [[first["event_id"]]]
    second = event()
    inbox.react_once_each(store, INBOX, [second], starts_something)
    assert ran[-1] == sorted([first["event_id"], second["event_id"]])


def test_an_effect_that_raises_leaves_no_record_so_the_retry_runs_it(store):
    first = event()

    def failing(session, event):
        note(session, event)
        raise OSError("disk full")

    with pytest.raises(OSError):
        inbox.react_once(store, INBOX, first, failing)
    assert effects(store) == recorded(store) == []
    assert inbox.react_once(store, INBOX, first, note) is True         # the requeued delivery
    assert effects(store) == recorded(store) == [first["event_id"]]


def test_a_batch_with_a_duplicate_inside_and_one_already_stored(store):
    stored, twice, once = event(), event(), event()
    inbox.react_once(store, INBOX, stored, note)
    assert inbox.react_once_each(store, INBOX, [stored, twice, twice, once], note) == 2
    assert effects(store) == recorded(store) == sorted(e["event_id"] for e in (stored, twice, once))
    assert inbox.react_once_each(store, INBOX, [once, twice, stored], note) == 0    # redelivered whole
    assert len(effects(store)) == 3


def test_a_batch_whose_effect_raises_records_none_of_its_events(store):
    batch = [event(), event()]

    def failing_on_the_second(session, event):
        if event is batch[1]:
            raise OSError("disk full")
        note(session, event)

    with pytest.raises(OSError):
        inbox.react_once_each(store, INBOX, batch, failing_on_the_second)
    assert effects(store) == recorded(store) == []
    assert inbox.react_once_each(store, INBOX, batch, note) == 2


def test_a_batch_clashing_on_a_unique_key_is_handled_event_by_event(store):
    """An effect's row taken by another consumer at the same moment fails the batch's transaction: each
    event then gets a transaction of its own, so the clash costs no other event."""
    batch = [event(), event(), event()]
    clashes = iter([IntegrityError("insert", {}, Exception("unique"))])

    def clashing_once_on_the_second(session, event):
        if event is batch[1] and (clash := next(clashes, None)) is not None:
            raise clash
        note(session, event)

    assert inbox.react_once_each(store, INBOX, batch, clashing_once_on_the_second) == 3
    assert effects(store) == recorded(store) == sorted(e["event_id"] for e in batch)


def test_reactions_are_a_table_of_event_types(store):
    seen = []
    reactions = inbox.Reactions(INBOX, effects={"a": lambda session, e: seen.append(("a", e["type"]))},
                                otherwise=lambda session, e: seen.append(("otherwise", e["type"])))
    assert reactions.once_each(store, [event("a"), event("b")]) == 2
    assert seen == [("a", "a"), ("otherwise", "b")]
    quiet = inbox.Reactions(INBOX, effects={"a": note})
    assert quiet.once(store, event("b")) is True                   # recorded, no effect
    assert effects(store) == [] and len(recorded(store)) == 3


def test_old_records_are_pruned_now_and_then(store, monkeypatch):
    old, recent = event(), event()
    with store.write() as session:
        session.add(ProcessedEvent(event_id=old["event_id"], type=old["type"],
                                   processed_at=utcnow() - inbox.KEPT_FOR - timedelta(minutes=1)))
    monkeypatch.setattr(inbox, "_pruned_at", {})
    inbox.react_once(store, INBOX, recent, note)                # the process's first reaction prunes
    assert recorded(store) == [recent["event_id"]]
    with store.write() as session:
        session.add(ProcessedEvent(event_id=old["event_id"], type=old["type"],
                                   processed_at=utcnow() - inbox.KEPT_FOR - timedelta(minutes=1)))
    inbox.react_once(store, INBOX, event(), note)               # within the hour: no prune
    assert old["event_id"] in recorded(store)
    assert inbox.prune(store, INBOX) == 1
    assert inbox.prune(store, inbox.Inbox(ProcessedEvent, kept_for=None)) == 0     # kept for ever (audit)


# ---- every service that consumes events, through its entrypoint ---------------------------------------
ORG = "o1"


def membership_ended(kind):
    return change_event(kind, "delete", ORG, {"id": "bob", "email": "bob@example.com"}, "member", "bob",
                        before={"roles": ["member"]},
                        state={"memberships": [membership_state(ORG, "bob", [], 2, active=False)]})


CONSUMERS = {
    # service, its entrypoint, an event it handles (with effects beyond its record)
    "orgs": (OrgsService, "on_change_event", lambda: membership_ended("member.left")),
    "members": (MembersService, "on_change_event", lambda: change_event(
        "organization.deleted", "delete", ORG, SYSTEM_ACTOR, "organization", ORG, before={"name": "Clinic"})),
    "credits": (CreditsService, "on_change_event", lambda: membership_ended("member.removed")),
    "audit": (AuditService, "on_change_events", lambda: change_event(
        "organization.renamed", "update", ORG, SYSTEM_ACTOR, "organization", ORG,
        before={"name": "a"}, after={"name": "b"})),
}


def every_row(store, service):
    """The whole database of the service, table by table."""
    metadata = importlib.import_module(f"services.{service}.models").Base.metadata
    with store.read() as session:
        return {table.name: sorted(map(repr, session.execute(select(table)).all()))
                for table in metadata.sorted_tables}


def inbox_size(store, service):
    reactions = importlib.import_module(f"services.{service}.reactions")
    model = (reactions.INBOX if hasattr(reactions, "INBOX") else reactions.REACTIONS.inbox).model
    with store.read() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("service", list(CONSUMERS))
def test_every_consumer_reacts_once_and_only_after_its_effects_committed(make_store, monkeypatch, service):
    store = make_store(service)
    service_class, entrypoint, make_event = CONSUMERS[service]
    consume = getattr(worker_factory(service_class, db=store), entrypoint)
    message = make_event()
    deliver = (lambda: consume([message])) if entrypoint == "on_change_events" else (lambda: consume(message))
    # An event's effects: common.inbox.Reactions' rule, or the audit trail's own (reactions.store_entry).
    owner = audit_reactions if service == "audit" else inbox.Reactions
    name = "store_entry" if service == "audit" else "effect"
    real_effect, runs = getattr(owner, name), []

    def counted(*args):
        runs.append(args[-1]["event_id"])
        if len(runs) == 1:
            raise OSError("database gone")            # the first delivery fails half-way
        return real_effect(*args)

    monkeypatch.setattr(owner, name, counted)
    before = every_row(store, service)
    with pytest.raises(OSError):
        deliver()
    assert every_row(store, service) == before           # no record without the effects: it runs again
    deliver()                                            # the requeued delivery
    assert runs == [message["event_id"]] * 2 and inbox_size(store, service) == 1
    handled = every_row(store, service)
    assert handled != before
    deliver()                                            # redelivered: nothing at all
    assert runs == [message["event_id"]] * 2 and every_row(store, service) == handled
