"""Spends on PostgreSQL: two round trips each, and group commit per organization (issue 27).

A spend reads everything it decides on in one statement (`credits_spend_facts`, migration 0012: the right
to use the agent, a stored answer to replay, the budget group, the alert settings, credit past its expiry,
and the organization's money: the account row's version, the balance, the spendable grants, the member's
usage), then joins its organization's queue in this process. The first spend of an organization whose
account is not busy here leads: it decides the spends waiting (itself first), in arrival order, each on what
the ones before it left (spends.decide: the same rules as on SQLite), and writes them all with one statement
(`credits_apply_spends`), which takes the account's row lock, checks that the money the decisions were made
on is still the account's (its version, PostgreSQL's xmin, renewed by every change of the row; and each
member's usage), and writes the grants drawn, the balance, the ledger entries, the usage, the alerts, the
events, the stored answers and the handled requests, all or nothing. Spends that arrive meanwhile wait for the
next batch, led by the first of them. Each spend gets its own answer or its own exact refusal (a refusal is
given only once the state it was decided on was confirmed under the lock).

Across processes the row lock stays the arbiter: a batch decided on money another process (or a grant, an
expiry) changed meanwhile is refused by the version check, reads the money again and is decided again; after
that it takes the lock first and reads under it. The money a batch left is kept as the next batch's starting
point while the organization stays busy here (a hint the version check confirms; dropped when idle).

Statements run in autocommit (the apply is one statement, its own transaction: no BEGIN or COMMIT round
trips) on an engine without the pool's ping: a connection found dead (a database restart) is replaced and
the statement sent once more; that is safe for the apply too, whose checks refuse to write twice (a request
recorded already is answered 503 request_interrupted; a stored answer is replayed).
"""
import json
from types import SimpleNamespace

import eventlet.event
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from common.errors import AppError
from common.handled_requests import request_interrupted
from common.idempotency import replay_of
from common.outbox import recorded
from common.sql import autocommit_engine, one_statement
from common.timeutil import iso, parse_iso, utcnow
from services.credits import agent_access, alerts, spends
from services.credits import spend_statements as sql
from services.credits.allowances import period_of
from services.credits.ledger import write_off_due
from services.credits.models import OutboxEvent

MAX_BATCH = 100         # spends decided in one statement
ATTEMPTS = 4            # a spend whose batch met a stored answer or a unique race reads again, this often
RETRY, LEAD = object(), object()

FACTS = text("SELECT credits_spend_facts(CAST(:p AS json))")
MONEY = text("SELECT credits_money(:org, CAST(:users AS json), :period, :now)")
APPLY = text("SELECT credits_apply_spends(CAST(:p AS json))")
LOCK = text("SELECT 1 FROM accounts WHERE organization_id = :org FOR UPDATE")

_busy = {}      # (database url, organization) -> spends waiting while a batch of it is being decided here
_money = {}     # (database url, organization) -> its Money after this process's last batch (while busy)


def engine_of(url):
    """The spends' engine: autocommit, no ping per checkout (common.sql.autocommit_engine)."""
    return autocommit_engine(url)


def _one(url, statement, params):
    return one_statement(url, statement, params)


# ---- one spend ----------------------------------------------------------------------------------------
def spend(uow, charge, access, check_confirmed):
    """spends.spend on PostgreSQL (see the module's text); `charge` a spends.Charge without facts yet."""
    url = uow.store.url
    for _ in range(ATTEMPTS):
        facts, refusal = read(url, uow, charge, access is not None)
        if refusal is not None:
            check_confirmed(access, charge.caller, refusal, charge.spender, charge.organization_id, charge.agent_id)
        if facts.replay is not None:
            return {"spend": facts.replay, "replayed": True}
        if facts.expired_credit:
            with uow.write() as session:        # rare: its own transaction, first
                write_off_due(session, charge.organization_id, charge.now)
            facts.money = None                  # changed: the batch reads it
        charge.facts = facts
        charge.request_id, charge.key = uow.unrecorded_request, (uow.user_id, uow.key, uow.operation)
        charge.store = uow.store
        outcome = submit(url, charge)
        if outcome is RETRY:
            continue
        if isinstance(outcome, BaseException):
            raise outcome
        uow.request_recorded()
        recorded(OutboxEvent)                   # this worker's end wakes the relay (its batch's leader may be another)
        return {"spend": outcome, "replayed": False}
    raise IntegrityError("credits: a spend met a stored answer or a unique race too often", None, None)


def read(url, uow, charge, check_access):
    """The spend's facts (spends.SpendFacts, with the money) and the refusal of its use of the agent (None
    when allowed, or not `check_access`): one statement."""
    organization_id, user_id, agent_id = charge.organization_id, charge.spender.id, charge.agent_id
    period = period_of(charge.now)
    row = _one(url, FACTS, {"p": json.dumps({
        "org": organization_id, "user": user_id, "agent": agent_id if agent_access.valid_agent_id(agent_id) else None,
        "key_user": uow.user_id, "key": uow.key, "now": iso(charge.now), "period": period})})
    refusal = None
    if check_access:
        member = row["member"]
        roles = member["roles"] if member and member["active"] and not row["retired"] else None
        agent = row["agent"]
        refusal = agent_access.refusal_from(
            roles, lambda: SimpleNamespace(**agent) if agent and agent["active"]
            and agent["organization_id"] == organization_id else None, user_id)
    replay = row["replay"]
    group, settings = row["group"], row["settings"]
    facts = spends.SpendFacts(
        replay=replay_of(replay["operation"], replay["response"], uow.operation) if replay and uow.key else None,
        group=SimpleNamespace(**group) if group else None,
        alert_settings=alerts.thresholds_of(SimpleNamespace(**settings) if settings else None),
        expired_credit=row["expired"], money=money_of(row["money"], period))
    return facts, refusal


def money_of(money, period):
    grants = [[g[0], g[1], g[2], parse_iso(g[3]) if g[3] else None, parse_iso(g[4])] for g in money["grants"]]
    return sql.Money(money["version"], money["balance"], period, dict(money["used"]), sql.in_spend_order(grants))


# ---- group commit -------------------------------------------------------------------------------------
def submit(url, charge):
    """Decide and write the spend with the others of its organization waiting here; returns its answer, its
    refusal (an exception, not raised), or RETRY (read again: its key was answered meanwhile)."""
    key = (url, charge.organization_id)
    charge.outcome = None
    waiting = _busy.get(key)
    if waiting is None:
        _busy[key] = []
        batch = [charge]
    else:
        charge.done = eventlet.event.Event()
        waiting.append(charge)
        if charge.done.wait() is not LEAD:
            return charge.outcome
        batch = charge.batch
    try:
        _decide_and_write(url, key, batch)
    except IntegrityError:              # a key or request another process wrote meanwhile: each reads again
        for other in batch:
            other.outcome = RETRY
    except Exception as error:          # the database away, say: every spend of the batch answers it
        for other in batch:
            other.outcome = error
    finally:
        _hand_over(key)
        for other in batch:
            if other.outcome is None:   # the leader was killed: whatever was written, reading again tells
                other.outcome = RETRY
            if other is not charge:
                other.done.send(None)
    return charge.outcome


def _hand_over(key):
    waiting = _busy[key]
    if not waiting:
        del _busy[key]
        _money.pop(key, None)
        return
    batch, _busy[key] = waiting[:MAX_BATCH], waiting[MAX_BATCH:]
    batch[0].batch = batch
    batch[0].done.send(LEAD)


def _decide_and_write(url, key, batch):
    """Decide the batch's spends and write them (see the module's text); sets each one's `outcome`."""
    organization_id, period = key[1], period_of(batch[0].now)
    pending, seen = [], set()
    for charge in batch:        # a key or a request twice in one batch, or another month: read again, next batch
        mine = {("key", charge.key[:2]) if charge.key[1] else None,
                ("request", charge.request_id) if charge.request_id else None} - {None}
        if mine & seen or period_of(charge.now) != period:
            charge.outcome = RETRY
            continue
        seen |= mine
        pending.append(charge)
    if not pending:
        return
    kept = _money.get(key)
    money = _with_users(kept if kept is not None and kept.period == period else pending[0].facts.money, pending)
    conflicts = 0
    while pending:
        _in_time(pending)
        if not pending:
            return
        if conflicts < 2:
            if money is None:
                money = _read_money(None, url, organization_id, pending, period)
            result, decided, after = _attempt(None, url, organization_id, money, pending)
        else:                   # twice decided on money changed meanwhile: under the lock this time
            with engine_of(url).connect() as connection:
                connection = connection.execution_options(isolation_level="READ COMMITTED")
                with connection.begin():
                    connection.execute(LOCK, {"org": organization_id})
                    money = _read_money(connection, url, organization_id, pending, period)
                    result, decided, after = _attempt(connection, url, organization_id, money, pending)
        if "version" in result:
            for charge, decision in decided:
                charge.outcome = decision.answer if isinstance(decision, spends.Decision) else decision
            if result["version"] is not None:
                after.version = result["version"]
                _money[key] = after
            return
        if "conflict" in result:
            _money.pop(key, None)
            money, conflicts = None, conflicts + 1
            continue
        # Nothing was written: those already handled or answered leave the batch, the others are decided again.
        handled, answered = set(result.get("handled", ())), {tuple(k) for k in result.get("replays", ())}
        left = len(pending)
        for charge in list(pending):
            if charge.request_id in handled:
                charge.outcome = request_interrupted()
            elif charge.key[:2] in answered:
                charge.outcome = RETRY
            else:
                continue
            pending.remove(charge)
        if len(pending) == left:
            raise RuntimeError(f"credits: an unexpected answer of credits_apply_spends: {result}")


def _in_time(pending):
    """Take out of the batch the spends whose store refuses to commit any more (a caller's deadline passed,
    when the store checks one: Store.check_deadline), each with that refusal."""
    for charge in list(pending):
        check = getattr(charge.store, "check_deadline", None)
        if check is None:
            continue
        try:
            check()
        except AppError as refusal:
            charge.outcome = refusal
            pending.remove(charge)


def _with_users(money, pending):
    """`money` with the usage of every member of the batch (read with their own spend), or None to read it."""
    if money is None:
        return None
    money = money.copy()
    for charge in pending:
        user, theirs = charge.spender.id, charge.facts.money
        if user not in money.used:
            if theirs is None or theirs.period != money.period:
                return None
            money.used[user] = theirs.used.get(user, 0)
    return money


def _read_money(connection, url, organization_id, pending, period):
    users = list(dict.fromkeys(charge.spender.id for charge in pending))
    params = {"org": organization_id, "users": json.dumps(users), "period": period, "now": utcnow()}
    row = connection.execute(MONEY, params).scalar_one() if connection is not None else _one(url, MONEY, params)
    return money_of(row, period)


def _attempt(connection, url, organization_id, money, pending):
    """Decide the pending spends on `money` and write them; (the statement's answer, the decisions, the money
    after them). No account (nothing to spend, on money read whole): the refusals, with nothing to check."""
    after = money.copy()
    decided = [(charge, spends.decide(after, charge)) for charge in pending]
    if money.version is None:
        return {"version": None}, decided, after
    params = {"p": json.dumps(_payload(organization_id, money, after, decided))}
    result = connection.execute(APPLY, params).scalar_one() if connection is not None else _one(url, APPLY, params)
    return result, decided, after


def _payload(organization_id, before, after, decided):
    accepted = [(charge, decision) for charge, decision in decided if isinstance(decision, spends.Decision)]
    draws = {}
    for _, decision in accepted:
        for grant, was, left in decision.draws:
            draws.setdefault(grant, [was, left])[1] = left
    users = dict.fromkeys(charge.spender.id for charge, _ in decided)
    changed = {charge.spender.id: iso(charge.now) for charge, _ in accepted}     # as each spend's own time says
    return {
        "org": organization_id, "version": before.version, "now": iso(utcnow()), "balance": after.balance,
        "updated_at": iso(accepted[-1][0].now) if accepted else None,
        "usage": [{"user_id": user, "period": before.period, "used": before.used.get(user, 0),
                   "after": after.used.get(user, 0), "updated_at": changed.get(user)} for user in users],
        "draws": [{"id": grant, "before": was, "after": left} for grant, (was, left) in draws.items()],
        "requests": [charge.request_id for charge, _ in accepted if charge.request_id],
        "answers": [{"user_id": charge.key[0], "key": charge.key[1], "operation": charge.key[2],
                     "response": decision.answer} for charge, decision in accepted if charge.key[1]],
        "entries": [dict(decision.entry, occurred_at=iso(decision.entry["occurred_at"])) for _, decision in accepted],
        "outbox": [{"event": event} if alert is None else {"alert": dict(alert, raised_at=iso(alert["raised_at"])),
                                                           "event": event}
                   for _, decision in accepted for alert, event in decision.outbox]}
