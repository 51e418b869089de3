"""The statements of a spend (spends.py), built once with bound parameters: building a statement and
its cache key on every spend cost more than running it. Plain statements on the session's connection,
not ORM objects: profiled at 150 spends/s, two thirds of the credits service's time went to the ORM's
identity map and unit of work for rows a spend touches once."""
from sqlalchemy import bindparam, select, update

from common.money import format_amount
from common.sql import DIALECT_INSERTS
from services.credits import allowances
from services.credits.ledger import SPEND_ORDER, live_grants
from services.credits.models import Account, Grant, LedgerEntry, MemberUsage

ACCOUNTS, GRANTS, LEDGER, USAGE = Account.__table__, Grant.__table__, LedgerEntry.__table__, MemberUsage.__table__


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


def _add_usage_statement(insert):
    """Add to the member's usage this period (the row created on first spend), returning the new total."""
    statement = insert(USAGE).values(organization_id=bindparam("org"), user_id=bindparam("user"),
                                     period=bindparam("month"), used=bindparam("units"), updated_at=bindparam("now"))
    return statement.on_conflict_do_update(
        index_elements=[USAGE.c.organization_id, USAGE.c.user_id, USAGE.c.period],
        set_={"used": USAGE.c.used + statement.excluded.used, "updated_at": statement.excluded.updated_at},
    ).returning(USAGE.c.used)


LOCK_ACCOUNT = _for_each_dialect(_lock_account_statement)
ADD_USAGE = _for_each_dialect(_add_usage_statement)
ANY_EXPIRED = select(GRANTS.c.id).where(
    GRANTS.c.organization_id == bindparam("org"), GRANTS.c.remaining > 0,
    GRANTS.c.expires_at.is_not(None), GRANTS.c.expires_at <= bindparam("now")).limit(1)
SPENDABLE_GRANTS = (select(GRANTS.c.id, GRANTS.c.type, GRANTS.c.remaining)
                    .where(GRANTS.c.organization_id == bindparam("org"), GRANTS.c.remaining > 0,
                           live_grants(bindparam("now", type_=GRANTS.c.expires_at.type)))
                    .order_by(*SPEND_ORDER).with_for_update())
SET_REMAINING = update(GRANTS).where(GRANTS.c.id == bindparam("grant")).values(remaining=bindparam("left"))
SET_BALANCE = (update(ACCOUNTS).where(ACCOUNTS.c.organization_id == bindparam("org"))
               .values(balance=bindparam("new_balance"), updated_at=bindparam("now")))
ADD_ENTRY = LEDGER.insert()


def lock_account(connection, organization_id, now):
    return connection.execute(LOCK_ACCOUNT[connection.dialect.name],
                              {"org": organization_id, "now": now}).scalar_one()


def draw(connection, organization_id, units, now):
    """Take `units` from the spendable grants in spend order (product rules §4); returns [{grant_id, type, amount}]."""
    grants = connection.execute(SPENDABLE_GRANTS, {"org": organization_id, "now": now}).all()
    allocations, remaining, left = [], [], units
    for grant in grants:
        take = min(left, grant.remaining)
        remaining.append({"grant": grant.id, "left": grant.remaining - take})
        allocations.append({"grant_id": grant.id, "type": grant.type, "amount": format_amount(take)})
        left -= take
        if left == 0:
            connection.execute(SET_REMAINING, remaining)
            return allocations
    # The balance was checked under the account lock and equals the grants' sum: unreachable unless
    # the invariant is broken, and then charging must not go on.
    raise RuntimeError(f"account {organization_id}: grants hold less than the balance")


def add_usage(connection, organization_id, user_id, units, now):
    """Add `units` to the member's usage this period; returns the new total."""
    return connection.execute(ADD_USAGE[connection.dialect.name], {
        "org": organization_id, "user": user_id, "month": allowances.period_of(now), "units": units,
        "now": now}).scalar_one()
