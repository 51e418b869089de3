"""The credits ledger: grants and expiries of each organization's credit, its balance and the ledger
listing; the account lock and the spend order that spends (spends.py) use too.

Plain functions, callable without a broker: a command's (a grant) over the open write transaction the
command pipeline gives it (common.commands, common.unit_of_work), reads and the expiry job over a `Store`.
A spend and its dry run are in spends.py
(they decide whether the caller may use the agent from the read models, agent_access.py); budget groups,
the monthly period and what a member may still spend (`Allowance`) are in budgets.py.

Concurrency: every change to an organization's money first locks its account row (`_locked_account`),
then re-reads what it decides on. On PostgreSQL that is SELECT ... FOR UPDATE, so two spends of one
organization run one after the other however many credits replicas there are; on SQLite every write
transaction already holds the database's single write lock (common.db). So a spend sees every spend
committed before it, and "balance suffices" and "budget allows" stay true until it commits. A spend on
PostgreSQL decides before it takes the lock and writes only if, under the lock, the account row's version
(xmin, renewed by every change of the row, so by every grant, spend and expiry) is still the one it decided
on (spend_batches.py): the same order, without holding the lock while deciding.
"""
import uuid
from datetime import UTC, datetime

from sqlalchemy import BigInteger, case, cast, func, or_, select

from common.auth import SYSTEM_ACTOR
from common.contracts.credits import FREE, PAID
from common.errors import ValidationFailed
from common.money import MAX_BALANCE_UNITS, format_amount
from common.paging import Keyset, check_limit, desc, keyset_page
from common.sql import conflict_insert
from common.timeutil import as_utc, iso, utcnow
from services.credits import allowances
from services.credits.events import CREDITS_EXPIRED, CREDITS_GRANTED, emit
from services.credits.models import Account, Grant, LedgerEntry, MemberUsage
from services.credits.schemas import grant_schema, ledger_entry_schema

LEDGER_KINDS = ("grant", "spend", "expiry")
ACTIVE_GRANTS_SHOWN = 100
NEWEST_FIRST = Keyset("ledger", desc("seq", LedgerEntry.seq, int))


# ---- the account lock and the grants ---------------------------------------------------------------
def _locked_account(session, organization_id, now):
    """The organization's account, created on first use, locked until the transaction ends."""
    session.execute(conflict_insert(session)(Account).values(organization_id=organization_id, balance=0, updated_at=now)
                    .on_conflict_do_nothing())
    return session.get(Account, organization_id, with_for_update=True, populate_existing=True)


def live_grants(now):
    """Grants whose credit still counts at `now` (product rules §4: expired credit stops counting)."""
    return or_(Grant.expires_at.is_(None), Grant.expires_at > now)


# product rules §4: free credit first, then the grant that expires soonest (decision: a free grant without an
# expiry comes after the expiring ones; paid grants never expire and are used oldest first).
SPEND_ORDER = (case((Grant.type == FREE, 0), else_=1), case((Grant.expires_at.is_(None), 1), else_=0),
               Grant.expires_at, Grant.created_at, Grant.id)
_NEVER = datetime.min.replace(tzinfo=UTC)


def spend_order_key(type, expires_at, created_at, id):
    """SPEND_ORDER for a grant in hand (a spend sorts the grants it read; tests hold the two to one order)."""
    return (0 if type == FREE else 1, 1 if expires_at is None else 0, as_utc(expires_at) or _NEVER,
            as_utc(created_at), id)


def _spendable_grants(session, organization_id, now, for_update=False):
    query = (select(Grant).where(Grant.organization_id == organization_id, Grant.remaining > 0, live_grants(now))
             .order_by(*SPEND_ORDER))
    return session.scalars(query.with_for_update() if for_update else query).all()


def _sum(column):
    """SUM of a units column as a whole number (PostgreSQL sums BIGINT into NUMERIC, i.e. a Decimal)."""
    return cast(func.coalesce(func.sum(column), 0), BigInteger)


def spendable_balance(session, organization_id, now):
    """The balance without credit that expired and was not written off yet (for reads that take no lock)."""
    return session.scalar(select(_sum(Grant.remaining)).where(
        Grant.organization_id == organization_id, Grant.remaining > 0, live_grants(now)))


def write_off_expired(session, account, now):
    """Record the expiry of every grant of the (locked) account that has passed its date with credit left:
    one ledger entry and one audit event each, actor `system`. Returns how many."""
    due = session.scalars(select(Grant).where(
        Grant.organization_id == account.organization_id, Grant.remaining > 0, Grant.expires_at.is_not(None),
        Grant.expires_at <= now).order_by(Grant.expires_at, Grant.id).with_for_update()).all()
    for grant in due:
        written_off, grant.remaining, grant.expired_at = grant.remaining, 0, now
        account.balance -= written_off
        entry = _add_entry(session, account, "expiry", written_off, SYSTEM_ACTOR, now, grant=grant)
        emit(session, CREDITS_EXPIRED, "update", account.organization_id, SYSTEM_ACTOR, "grant", grant.id,
             before={"remaining": format_amount(written_off)},
             after={"remaining": format_amount(0), "ledger_entry_id": entry.id}, occurred_at=now)
    if due:
        account.updated_at = now
    return len(due)


def _add_entry(session, account, kind, amount, actor, now, grant=None, agent_id=None, allocations=None):
    entry = LedgerEntry(id=str(uuid.uuid4()), organization_id=account.organization_id, kind=kind, amount=amount,
                        balance_after=account.balance, actor_id=actor["id"], actor_email=actor.get("email"),
                        agent_id=agent_id, grant_id=grant.id if grant else None,
                        grant_type=grant.type if grant else None, allocations=allocations, occurred_at=now)
    session.add(entry)
    return entry


# ---- grants ----------------------------------------------------------------------------------------
def add_grant(session, identity, organization_id, amount, type, expires_at=None, now=None):
    """Credit comes in (Owner/Billing, checked by the pipeline): a grant, its ledger entry, one event.
    `amount` (units), `type` and `expires_at` come as the declared contract loaded them
    (common.contracts.credits.GrantInput). Whether the expiry is still in the future is decided here,
    after the pipeline looked for a retry's stored answer: a retry that comes after the expiry still replays."""
    now = now or utcnow()
    account = _locked_account(session, organization_id, now)
    if expires_at is not None and expires_at <= now:
        raise ValidationFailed("expires_at must be in the future.", code="expiry_in_past", field="expires_at")
    return _grant(session, account, identity.as_actor(), amount, type, expires_at, now)


def grant_payment(session, organization_id, transaction_id, amount, buyer, now=None):
    """Paid credit for a successful payment (the billing service's command, as the system): granted once per
    transaction, whoever asks first (the provider's answer, its webhook, the reconciliation); asked again,
    the grant made the first time, with `granted` False. `buyer`: the actor of the purchase ({"id", "email"},
    or the system for an automatic top-up). The account's lock serializes two askers; the unique
    transaction id settles the rest (the pipeline runs the loser once more, and it finds the grant)."""
    now = now or utcnow()
    account = _locked_account(session, organization_id, now)
    grant = session.scalar(select(Grant).where(Grant.transaction_id == transaction_id))
    if grant is not None:
        return dict(grant_dict(grant, now), granted=False)
    answer = _grant(session, account, {"id": buyer["id"], "email": buyer.get("email") or None}, amount, PAID, None,
                    now, transaction_id=transaction_id)
    return dict(answer, granted=True)


def _grant(session, account, actor, amount, type, expires_at, now, transaction_id=None):
    write_off_expired(session, account, now)
    if account.balance + amount > MAX_BALANCE_UNITS:
        raise ValidationFailed("This grant would take the balance over the most an account may hold.",
                               code="balance_limit", field="amount")
    grant = Grant(id=str(uuid.uuid4()), organization_id=account.organization_id, type=type, amount=amount,
                  remaining=amount, expires_at=expires_at, created_by=actor["id"], created_at=now,
                  transaction_id=transaction_id)
    session.add(grant)
    account.balance += amount
    account.updated_at = now
    entry = _add_entry(session, account, "grant", amount, actor, now, grant=grant)
    answer = dict(grant_dict(grant, now), ledger_entry_id=entry.id)
    after = {"type": type, "amount": answer["amount"], "expires_at": answer["expires_at"]}
    if transaction_id is not None:
        after["transaction_id"] = transaction_id
    emit(session, CREDITS_GRANTED, "create", account.organization_id, actor, "grant", grant.id, after=after,
         occurred_at=now)
    return answer


def grant_dict(grant, now):
    expired = grant.expired_at is not None or (grant.expires_at is not None and as_utc(grant.expires_at) <= now)
    return grant_schema.dump({column: getattr(grant, column) for column in GRANT_COLUMNS} | {"expired": expired})


GRANT_COLUMNS = ("id", "organization_id", "type", "amount", "remaining", "expires_at", "created_by", "created_at")


# ---- what a member may still spend -----------------------------------------------------------------
def allowance_of(store, organization_id, user_id, now=None):
    """The member's allowance as a read (no lock): what they could spend now and which limit binds."""
    now = now or utcnow()
    with store.read() as session:
        balance = spendable_balance(session, organization_id, now)
        return allowances.allowance(session, organization_id, user_id, balance, now)


def usage_by_organization(store, user_id, member_of, organization_ids=None, now=None):
    """The member's usage this period in each organization they belong to ("My Credit"): those of
    `member_of`, or, when `organization_ids` is given, those of them the member belongs to, in that order."""
    now = now or utcnow()
    if organization_ids is not None:
        belongs = set(member_of)
        member_of = [organization_id for organization_id in organization_ids if organization_id in belongs]
    items = []
    with store.read() as session:
        for organization_id in member_of:
            allowance = allowances.allowance(session, organization_id, user_id,
                                          spendable_balance(session, organization_id, now), now)
            items.append(dict(allowance.as_dict(), organization_id=organization_id,
                              used=format_amount(allowance.used)))
    return items


# ---- expiry job and the credits page ----------------------------------------------------------------
def write_off_due(session, organization_id, now):
    """In a write transaction: lock the organization's account and write off its expired credit. Returns
    how many grants."""
    return write_off_expired(session, _locked_account(session, organization_id, now), now)


def settle_expiries(store, organization_id, now=None):
    """Write off the organization's expired credit, if any (a read first: usually nothing is due), in its
    own write transaction of `store`."""
    now = now or utcnow()
    with store.read() as session:
        if session.scalar(select(Grant.id).where(
                Grant.organization_id == organization_id, Grant.remaining > 0, Grant.expires_at.is_not(None),
                Grant.expires_at <= now).limit(1)) is None:
            return 0
    with store.write() as session:
        return write_off_due(session, organization_id, now)


def expire_due_grants(store, now=None, max_organizations=500):
    """The periodic job: write off expired credit everywhere (each organization in its own transaction)."""
    now = now or utcnow()
    with store.read() as session:
        organization_ids = session.scalars(select(Grant.organization_id).distinct().where(
            Grant.remaining > 0, Grant.expires_at.is_not(None), Grant.expires_at <= now)
            .limit(max_organizations)).all()
    return sum(settle_expiries(store, organization_id, now) for organization_id in organization_ids)


def credits_page(store, organization_id, now=None):
    """Balance (free and paid), this period's spend and the grants still holding credit, in spend order."""
    now = now or utcnow()
    settle_expiries(store, organization_id, now)
    with store.read() as session:
        grants = _spendable_grants(session, organization_id, now)
        spent = session.scalar(select(_sum(MemberUsage.used)).where(
            MemberUsage.organization_id == organization_id, MemberUsage.period == allowances.period_of(now)))
    resets_at = allowances.period_bounds(now)[1]
    return {"organization_id": organization_id,
            "balance": format_amount(sum(g.remaining for g in grants)),
            "free_balance": format_amount(sum(g.remaining for g in grants if g.type == FREE)),
            "paid_balance": format_amount(sum(g.remaining for g in grants if g.type == PAID)),
            "spent_this_period": format_amount(spent), "period": allowances.period_of(now), "resets_at": iso(resets_at),
            "active_grant_count": len(grants), "grants": [grant_dict(g, now) for g in grants[:ACTIVE_GRANTS_SHOWN]]}


# ---- the ledger ------------------------------------------------------------------------------------
def ledger_page(store, organization_id, kind=None, cursor=None, limit=None):
    """Every grant, spend and expiry, newest first, keyset-paged."""
    limit = check_limit(limit)
    if kind is not None and kind not in LEDGER_KINDS:
        raise ValidationFailed("kind must be grant, spend or expiry.", code="invalid_kind", field="kind")
    conditions = [LedgerEntry.organization_id == organization_id]
    if kind:
        conditions.append(LedgerEntry.kind == kind)
    with store.read() as session:
        return keyset_page(session, select(LedgerEntry).where(*conditions), NEWEST_FIRST, cursor, limit,
                           dump=ledger_entry_dict)


def ledger_entry_dict(entry):
    return ledger_entry_schema.dump(entry)
