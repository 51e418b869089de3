"""The statements of a spend on SQLite (spends.py; PostgreSQL's are server-side functions, migration 0012,
called by spend_batches.py), built once with bound parameters: building a statement and its cache key on
every spend cost more than running it. Plain statements on the session's connection, not ORM objects:
profiled at 150 spends/s, two thirds of the credits service's time went to the ORM's identity map and unit
of work for rows a spend touches once. Also the Money a spend decides on, for both databases."""
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update

from common.outbox import record
from common.sql import DIALECT_INSERTS
from common.timeutil import as_utc
from services.credits import alerts, allowances
from services.credits.ledger import live_grants, spend_order_key
from services.credits.models import Account, Grant, LedgerEntry, MemberUsage, OutboxEvent

ACCOUNTS, GRANTS, LEDGER, USAGE = Account.__table__, Grant.__table__, LedgerEntry.__table__, MemberUsage.__table__


@dataclass
class Money:
    """An organization's money as one spend, or one batch of spends, decides on it: the account row's
    `version` (PostgreSQL's xmin, renewed by every change of the row; None on SQLite, where the account is
    locked before it is read), the balance, the spendable grants in spend order ([id, type, remaining,
    expires_at, created_at]), and members' usage in `period` ({user_id: units})."""
    version: int | None
    balance: int
    period: str
    used: dict
    grants: list

    def copy(self):
        return Money(self.version, self.balance, self.period, dict(self.used), [list(g) for g in self.grants])


def _for_each_dialect(build):
    return {name: build(insert) for name, insert in DIALECT_INSERTS.items()}


def _lock_account_statement(insert):
    """The organization's balance, its account created on first use and locked until the transaction ends,
    in one statement: an upsert that "updates" the key to itself takes the row lock on PostgreSQL (as
    SELECT ... FOR UPDATE does) and returns the row as committed by whoever held it before."""
    statement = insert(ACCOUNTS).values(organization_id=bindparam("org"), balance=0,
                                        updated_at=bindparam("now"))
    return statement.on_conflict_do_update(
        index_elements=[ACCOUNTS.c.organization_id],
        set_={"organization_id": statement.excluded.organization_id}).returning(ACCOUNTS.c.balance)


def _set_usage_statement(insert):
    """Set the member's usage this period (the row created on first spend) to what the spend decided."""
    statement = insert(USAGE).values(organization_id=bindparam("org"), user_id=bindparam("user"),
                                     period=bindparam("month"), used=bindparam("used"), updated_at=bindparam("now"))
    return statement.on_conflict_do_update(
        index_elements=[USAGE.c.organization_id, USAGE.c.user_id, USAGE.c.period],
        set_={"used": statement.excluded.used, "updated_at": statement.excluded.updated_at})


LOCK_ACCOUNT = _for_each_dialect(_lock_account_statement)
SET_USAGE = _for_each_dialect(_set_usage_statement)
ANY_EXPIRED = select(GRANTS.c.id).where(
    GRANTS.c.organization_id == bindparam("org"), GRANTS.c.remaining > 0,
    GRANTS.c.expires_at.is_not(None), GRANTS.c.expires_at <= bindparam("now")).limit(1)
SPENDABLE_GRANTS = (select(GRANTS.c.id, GRANTS.c.type, GRANTS.c.remaining, GRANTS.c.expires_at, GRANTS.c.created_at,
                           allowances.MEMBER_USAGE.scalar_subquery().label("used"))
                    .where(GRANTS.c.organization_id == bindparam("org"), GRANTS.c.remaining > 0,
                           live_grants(bindparam("now", type_=GRANTS.c.expires_at.type)))
                    .with_for_update())
SET_REMAINING = update(GRANTS).where(GRANTS.c.id == bindparam("grant")).values(remaining=bindparam("left"))
SET_BALANCE = (update(ACCOUNTS).where(ACCOUNTS.c.organization_id == bindparam("org"))
               .values(balance=bindparam("new_balance"), updated_at=bindparam("now")))
ADD_ENTRY = LEDGER.insert()


def money_under_lock(connection, organization_id, user_id, now):
    """SQLite (and the rules' tests on either database): the organization's account locked, then its Money as
    a spend decides on it: the balance, the spendable grants, the member's usage this period."""
    balance = connection.execute(LOCK_ACCOUNT[connection.dialect.name],
                                 {"org": organization_id, "now": now}).scalar_one()
    month = allowances.period_of(now)
    params = {"org": organization_id, "user": user_id, "month": month, "now": now}
    grants = connection.execute(SPENDABLE_GRANTS, params).all()     # each with the member's usage
    used = grants[0].used if grants else connection.execute(allowances.MEMBER_USAGE, params).scalar()
    return Money(version=None, balance=balance, period=month, used={user_id: used or 0},
                 grants=in_spend_order([list(grant[:5]) for grant in grants]))


def in_spend_order(grants):
    """Grants as [id, type, remaining, expires_at, created_at] lists, sorted in spend order (product rules §4)."""
    for grant in grants:
        grant[3], grant[4] = as_utc(grant[3]), as_utc(grant[4])
    return sorted(grants, key=lambda g: spend_order_key(g[1], g[3], g[4], g[0]))


def apply(session, decision, now):
    """Write what a spend decided (spends.decide) in the session's transaction, under the account lock."""
    connection = session.connection()
    if decision.draws:
        connection.execute(SET_REMAINING, [{"grant": grant, "left": after} for grant, _, after in decision.draws])
    connection.execute(SET_BALANCE, {"org": decision.entry["organization_id"], "new_balance": decision.balance,
                                     "now": now})
    connection.execute(ADD_ENTRY, decision.entry)
    user, month, _, used = decision.usage
    connection.execute(SET_USAGE[connection.dialect.name], {
        "org": decision.entry["organization_id"], "user": user, "month": month, "used": used, "now": now})
    for alert, envelope in decision.outbox:
        if alert is None or alerts.insert_alert(connection, alert):
            record(session, OutboxEvent, envelope)
