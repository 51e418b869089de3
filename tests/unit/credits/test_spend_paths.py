"""The spend's two paths decide alike. On SQLite a spend runs the statements of spend_statements.py; on
PostgreSQL one statement reads and one writes a batch (spend_batches.py, migration 0012). The rules are one
piece of Python (spends.decide) either way; these tests hold the two paths' writing and reading to the same
results: the same scenes played on both databases leave the same answers, refusals, ledger, grants, usage,
alerts and events (ids aside). And spends of one organization made at once on PostgreSQL are decided in
batches, each exactly."""
import re
from datetime import UTC, datetime, timedelta

import eventlet
import pytest
from sqlalchemy import select

from common.auth import Identity
from common.errors import AppError
from services.credits import spend_batches
from services.credits.models import Account, Alert, Grant, LedgerEntry, MemberUsage, OutboxEvent
from tests.unit.credits import domain
from tests.unit.credits.conftest import emptied_postgres_store
from tests.unit.credits.facts import ORG

T0 = datetime(2031, 3, 10, 12, 0, tzinfo=UTC)
AGENT = "agent-1"
OLGA = Identity("olga", "olga@example.com", "Olga")
BOB = Identity("bob", "bob@example.com", "Bob")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def normalized(value, ids):
    """`value` with every UUID replaced by its order of first appearance, and the volatile fields dropped."""
    if isinstance(value, dict):
        return {k: normalized(v, ids) for k, v in value.items() if k not in ("traceparent", "tracestate")}
    if isinstance(value, list | tuple):
        return [normalized(v, ids) for v in value]
    if isinstance(value, str) and UUID.match(value):
        return ids.setdefault(value, f"id-{len(ids)}")
    return value


def play(store, steps):
    """Run the steps (each a callable of the store) and give back what happened and what was left."""
    happened = []
    for step in steps:
        try:
            happened.append(step(store))
        except AppError as error:
            happened.append(error.to_dict())
    with store.read() as session:
        def rows(model, *order):
            return [{c.name: getattr(r, c.name) for c in model.__table__.columns if c.name not in ("seq", "id")
                     or model is Grant} for r in session.scalars(select(model).order_by(*order))]
        left = {
            "ledger": rows(LedgerEntry, LedgerEntry.seq), "grants": rows(Grant, Grant.created_at),
            "usage": rows(MemberUsage, MemberUsage.user_id, MemberUsage.period),
            "alerts": rows(Alert, Alert.seq), "accounts": rows(Account, Account.organization_id),
            "events": [e.envelope for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))]}
    for table in left.values():         # datetimes as UTC (SQLite gives them back naive)
        for row in table:
            for k, v in row.items():
                if isinstance(v, datetime):
                    row[k] = v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    ids = {}
    return normalized(happened, ids), normalized(left, ids)


def at(seconds):
    return T0 + timedelta(seconds=seconds)


def spend(who, amount, key, seconds, user_id=None):
    return lambda store: domain.spend(store, who, ORG, AGENT, amount, key, user_id=user_id, now=at(seconds))


def grant(amount, type, expires_in_days=None, seconds=0):
    expires = (T0 + timedelta(days=expires_in_days)).isoformat() if expires_in_days else None
    return lambda store: domain.add_grant(store, OLGA, ORG, amount, type, expires, now=at(seconds))


def scene(store):
    group = domain.create_group(store, OLGA, ORG, {"name": "Team", "monthly_limit": "6"}, now=T0)
    domain.assign_member(store, OLGA, ORG, group["id"], BOB.id, now=T0)
    domain.set_alert_settings(store, OLGA, ORG, [50, 100], "8", now=T0)
    return "scene"


SCENES = {
    "orders, budgets, alerts, refusals, replays": [
        scene, grant("5", "free", 10, 1), grant("3", "free", None, 2), grant("10", "paid", None, 3),
        grant("2", "free", 5, 4),
        spend(BOB, "2.5", "k1", 10), spend(OLGA, "4", "k2", 11), spend(BOB, "2.5", "k3", 12),
        spend(BOB, "2", "k4", 13),          # over the budget: refused, the budget named
        spend(OLGA, "9", "k5", 14),         # the floor crossed
        spend(OLGA, "5", "k6", 15),         # not enough credit
        spend(BOB, "1", "k7", 16),          # the budget's 100 %
        spend(BOB, "2.5", "k1", 17),        # a replay
        spend(BOB, "3", "k1", 18),          # the same key, another amount: 409
        spend(OLGA, "0.0001", "k8", 19)],
    "expiry, a new month, a spend that empties the balance": [
        scene, grant("4", "free", 3, 1), grant("1", "paid", None, 2),
        spend(BOB, "3", "k1", 10),
        spend(BOB, "1", "k2", 4 * 86400),       # the free credit's rest expired: written off first; the paid credit
        spend(BOB, "1", "k3", 30 * 86400),      # another month, a budget again, and nothing left
        spend(OLGA, "0.0001", "k4", 30 * 86400 + 1)],
}


@pytest.mark.parametrize("name", SCENES)
def test_both_paths_leave_the_same_results(name, make_store, credits_postgres_url):
    sqlite = play(make_store("credits"), SCENES[name])
    postgres = play(emptied_postgres_store(credits_postgres_url), SCENES[name])
    assert postgres[0] == sqlite[0]             # answers and refusals, step by step
    for table in sqlite[1]:
        assert postgres[1][table] == sqlite[1][table], table


# ---- group commit on PostgreSQL ------------------------------------------------------------------------
def test_spends_made_at_once_are_decided_in_batches_each_exactly(credits_postgres_url, monkeypatch):
    """60 spends of 1 by three members at once, with 50 of credit and Bob's budget at 15: every spend is
    decided on what the ones before it left, in fewer statements than spends."""
    store = emptied_postgres_store(credits_postgres_url)
    domain.add_grant(store, OLGA, ORG, "50", "paid", now=T0)
    scene(store)
    members = [OLGA, BOB, Identity("carl", "carl@example.com", "Carl")]
    applied = []
    original = spend_batches._attempt

    def counting(*args):
        applied.append(len(args[4]))
        return original(*args)
    monkeypatch.setattr(spend_batches, "_attempt", counting)
    group = domain.create_group(store, OLGA, ORG, {"name": "Fifteen", "monthly_limit": "15"}, now=T0)
    domain.assign_member(store, OLGA, ORG, group["id"], BOB.id, now=T0)

    def one(i):
        who = members[i % 3]
        try:
            return domain.spend(store, who, ORG, AGENT, "1", f"key-{i}", now=at(i))["spend"]["user_id"]
        except AppError as error:
            return error.code
    outcomes = list(eventlet.GreenPool(60).imap(one, range(60)))
    accepted = [o for o in outcomes if o in ("olga", "bob", "carl")]
    assert len(accepted) == 50 and accepted.count("bob") == 15
    assert outcomes.count("budget_exceeded") + outcomes.count("insufficient_credits") == 10
    assert len(applied) < 60 and max(applied) > 1, applied
    with store.read() as session:
        assert session.get(Account, ORG).balance == 0
        usage = {u.user_id: u.used for u in session.scalars(select(MemberUsage))}
        assert usage == {m: accepted.count(m) * 10000 for m in ("olga", "bob", "carl")}
        entries = session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "spend")
                                  .order_by(LedgerEntry.seq)).all()
        assert [e.balance_after for e in entries] == [(49 - i) * 10000 for i in range(50)]
        assert session.scalars(select(Grant.remaining)).all() == [0]


def test_a_batch_decided_on_money_changed_meanwhile_is_decided_again_then_under_the_lock(credits_postgres_url,
                                                                                       monkeypatch):
    """Another process's change between a batch's read and its write (here a grant, each time the batch is
    about to be written, twice): the version check refuses the write, the batch reads the money again and is
    decided again, the third time under the account's lock; the spend is charged once, on the new money."""
    store = emptied_postgres_store(credits_postgres_url)
    domain.add_grant(store, OLGA, ORG, "1", "paid", now=T0)
    original, tries = spend_batches._attempt, []

    def meddling(connection, *args):
        tries.append(connection is not None)
        if len(tries) <= 2:
            domain.add_grant(store, OLGA, ORG, "1", "free", now=T0)        # another process's change
        return original(connection, *args)
    monkeypatch.setattr(spend_batches, "_attempt", meddling)
    answer = domain.spend(store, BOB, ORG, AGENT, "2.5", "k1", now=at(1))["spend"]
    assert tries == [False, False, True]
    assert [a["type"] for a in _allocations(store)] == ["free", "free", "paid"] and answer["amount"] == "2.5000"
    with store.read() as session:
        assert session.get(Account, ORG).balance == 5000


def _allocations(store):
    with store.read() as session:
        return session.scalars(select(LedgerEntry.allocations).where(LedgerEntry.kind == "spend")).one()


def test_one_key_twice_at_once_charges_once_and_replays_the_other(credits_postgres_url):
    store = emptied_postgres_store(credits_postgres_url)
    domain.add_grant(store, OLGA, ORG, "10", "paid", now=T0)
    both = [eventlet.spawn(domain.spend, store, BOB, ORG, AGENT, "1", "same", None, None, at(1)) for _ in range(2)]
    answers = [thread.wait() for thread in both]
    assert sorted(a["replayed"] for a in answers) == [False, True]
    assert answers[0]["spend"]["id"] == answers[1]["spend"]["id"]
    with store.read() as session:
        assert session.get(Account, ORG).balance == 90000


def test_spends_go_on_across_a_database_restart_without_a_failed_request(credits_postgres_url, postgres):
    """No ping per checkout: the pooled connections a restart killed are found dead by the statement itself,
    which is sent again on a new one (spend_batches._one), so no spend fails for it."""
    store = emptied_postgres_store(credits_postgres_url)
    domain.add_grant(store, OLGA, ORG, "10", "paid", now=T0)
    spends_at_once = [eventlet.spawn(domain.spend, store, BOB, ORG, AGENT, "1", f"before-{i}", None, None, at(i))
                      for i in range(5)]            # several pooled connections
    [thread.wait() for thread in spends_at_once]
    postgres.run(str(postgres.bin / "pg_ctl"), "-D", str(postgres.dir / "data"), "-m", "fast", "-w", "restart")
    answers = [domain.spend(store, BOB, ORG, AGENT, "1", f"after-{i}", now=at(10 + i)) for i in range(3)]
    assert [a["replayed"] for a in answers] == [False] * 3
    with store.read() as session:
        assert session.get(Account, ORG).balance == 20000
