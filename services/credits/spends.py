"""A spend and its dry run: the hot path of the product (every message a member sends to an agent).

A spend is one write transaction under the organization's account lock (ledger.py, "Concurrency"):
the right to use the agent (`check_access`, from the read models), a replayed Idempotency-Key, credit
past its expiry, the balance and the member's monthly budget, the grants drawn, the ledger entry, the
member's usage, the audit event and the stored answer, all or nothing.

Why SQL statements here and ORM objects elsewhere: profiled at 150 spends/s, two thirds of the credits
service's time went to the ORM's identity map and unit of work for rows a spend touches once. So the
spend runs as plain statements on the session's connection (an upsert that locks and reads the account
in one round trip, one that adds to the usage and returns it), with the ORM path kept only for the rare
write-off of expired credit. Same rules, same rows; tests/unit/credits checks them on both paths.
"""
import uuid

from sqlalchemy import bindparam, select, update

from common import idempotency
from common.auth import Identity, is_valid_user_id
from common.authz import check_key_allowed
from common.contracts import load
from common.contracts.credits import SpendInput
from common.errors import AppError, BadRequest, ValidationFailed, member_not_found
from common.money import format_amount, parse_amount
from common.sql import DIALECT_INSERTS
from common.timeutil import iso, utcnow
from services.credits import alerts, budgets
from services.credits.events import CREDITS_SPENT, emit
from services.credits.ledger import (
    SPEND_ORDER,
    live_grants,
    settle_expiries,
    spendable_balance,
    with_key_race_retry,
)
from services.credits.models import Account, Grant, IdempotentRequest, LedgerEntry, MemberUsage

ACCOUNTS, GRANTS, LEDGER, USAGE = Account.__table__, Grant.__table__, LedgerEntry.__table__, MemberUsage.__table__


def clean_spend(amount, idempotency_key):
    """The amount in units (common.contracts.credits); a spend needs an Idempotency-Key."""
    units = load(SpendInput, {"amount": amount})["amount"]
    if not idempotency.check_key(idempotency_key):
        raise BadRequest("A spend needs an Idempotency-Key header, so that a retry never charges twice.",
                         code="idempotency_key_required", field="Idempotency-Key")
    return units


def spender_of(caller, organization_id, user_id):
    """Whose spend it is: an API key's (SPEC §9: scope usage:write, its own organization) is the member
    `user_id` names, decided as theirs; a person's is their own (`user_id` absent or their own id)."""
    if caller.is_key:
        check_key_allowed(caller, organization_id, "usage:write")
        if not is_valid_user_id(user_id):
            raise ValidationFailed("A spend by API key names the member it is made for in user_id.",
                                   code="user_id_required", field="user_id")
        return Identity(user_id, "", "")
    if user_id is not None and user_id != caller.id:
        raise ValidationFailed("user_id is for API keys spending on a member's behalf; a member spends as "
                               "themselves.", code="user_id_not_allowed", field="user_id")
    return caller


def as_member_refusal(caller, decide):
    """decide(), where a key's spend for someone who is not a member of its organization is answered as
    such (the organization exists for the key: its own)."""
    try:
        return decide()
    except AppError as exc:
        if caller.is_key and exc.code == "organization_not_found":
            raise member_not_found() from None
        raise


def spend(store, identity, organization_id, agent_id, amount, idempotency_key, now=None, check_access=None,
          actor=None):
    """Charge the organization for `identity`'s use of an agent: the caller's own, or, when `actor` (an
    API key spending on the member's behalf, SPEC §9) is given, the member's, decided exactly as theirs;
    the key is then the event's actor and the owner of the Idempotency-Key. `check_access(session)`, when given,
    raises if the caller may not use the agent (a revocation applied a moment ago included); a replayed
    key returns the first answer; otherwise, under the account lock, the balance and the caller's
    monthly budget must both allow the amount, or nothing changes and a 402 names what binds. Returns
    {"spend", "replayed"}.

    Only the money is decided under the lock: the checks that do not read it run before, in a read
    transaction, so the lock (which every spend of the organization waits for) is held for eight
    statements. A right revoked while a spend is between the two is revoked concurrently with it: the
    spend counts as made just before (the revocation lag grows by one spend's duration at most)."""
    now = now or utcnow()
    units = clean_spend(amount, idempotency_key)
    # A key's Idempotency-Key covers the member too: the same key for another member is a reuse (409).
    operation = (idempotency.operation("spend", organization_id, agent_id, units) if actor is None else
                 idempotency.operation("spend", organization_id, agent_id, units, identity.id))
    actor = actor or identity

    def attempt():
        with store.read_then_write() as phases:
            return charge(phases)

    def charge(phases):
        # First what the spend is decided on besides the money, read without any lock: whether the caller
        # may use the agent, a stored answer to replay, their budget group, credit past its expiry.
        with phases.read() as session:
            if check_access is not None:
                check_access(session)
            replay = idempotency.find_replay(session, IdempotentRequest, actor.id, idempotency_key, operation)
            if replay is not None:
                return {"spend": replay, "replayed": True}
            group = budgets.member_group(session, organization_id, identity.id)
            alert_settings = alerts.settings_of(session, organization_id)     # None: no alerts to check
            expired = session.execute(ANY_EXPIRED, {"org": organization_id, "now": now}).first() is not None
        if expired:
            settle_expiries(store, organization_id, now)        # rare: its own transaction, first
        # Then the money, under the account lock, held for as few statements as possible.
        with phases.write() as session:
            connection = session.connection()
            balance = _lock_account(connection, organization_id, now)
            used = _add_usage(connection, organization_id, identity.id, units, now)    # this spend included
            allowance = budgets.Allowance(balance=balance, used=used - units, group=group, now=now)
            refusal = allowance.refusal(units)
            if refusal is not None:
                raise refusal                                   # and the usage just added rolls back
            allocations = _draw(connection, organization_id, units, now)
            balance -= units
            connection.execute(SET_BALANCE, {"org": organization_id, "new_balance": balance, "now": now})
            allowance.used = used
            entry_id = str(uuid.uuid4())
            spender = identity.as_actor()      # the ledger names whose spend it is; the event, who made it
            connection.execute(ADD_ENTRY, {
                "id": entry_id, "organization_id": organization_id, "kind": "spend", "amount": units,
                "balance_after": balance, "actor_id": spender["id"], "actor_email": spender.get("email") or None,
                "agent_id": agent_id, "grant_id": None, "grant_type": None, "allocations": allocations,
                "occurred_at": now})
            answer = {"id": entry_id, "organization_id": organization_id, "agent_id": agent_id,
                      "user_id": identity.id, "amount": format_amount(units), "occurred_at": iso(now),
                      "budget": allowance.budget()}
            emit(session, CREDITS_SPENT, "create", organization_id, actor, "spend", entry_id,
                 after={"amount": answer["amount"], "agent_id": agent_id, "user_id": identity.id}, occurred_at=now)
            if alert_settings is not None:     # thresholds this spend crossed (alerts.py): none, usually
                alerts.record_crossings(session, connection, alert_settings, organization_id, identity.id,
                                        group.monthly_limit if group else None, (used - units, used),
                                        (balance + units, balance), entry_id, now)
            # A concurrent request with the same key fails here, on the key's primary key, and runs again
            # (with_key_race_retry): it then finds this answer to replay.
            idempotency.remember(session, IdempotentRequest, actor.id, idempotency_key, operation, answer, now)
            return {"spend": answer, "replayed": False}
    return with_key_race_retry(attempt)


def evaluate_spend(store, identity, organization_id, agent_id, amount, now=None, check_access=None):
    """The dry run of a spend: would it be accepted now, and if not, why (nothing is charged).
    `check_access(session)`, when given, raises if the caller may not use the agent."""
    now = now or utcnow()
    with store.read() as session:
        if check_access is not None:
            check_access(session)
        allowance = budgets.allowance(session, organization_id, identity.id,
                                      spendable_balance(session, organization_id, now), now)
    answer = dict(allowance.as_dict(), dry_run=True, organization_id=organization_id, agent_id=agent_id,
                  amount=None, allowed=None, refusal=None)
    if amount is not None:
        units = parse_amount(amount, "amount")
        refusal = allowance.refusal(units)
        answer.update(amount=format_amount(units), allowed=refusal is None,
                      refusal=refusal.to_dict()["error"] if refusal else None)
    return answer


# ---- the statements of a spend ---------------------------------------------------------------------
# Built once with bound parameters: building a statement and its cache key on every spend cost more
# than running it.
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


def _lock_account(connection, organization_id, now):
    return connection.execute(LOCK_ACCOUNT[connection.dialect.name],
                              {"org": organization_id, "now": now}).scalar_one()


def _draw(connection, organization_id, units, now):
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


def _add_usage(connection, organization_id, user_id, units, now):
    """Add `units` to the member's usage this period; returns the new total."""
    return connection.execute(ADD_USAGE[connection.dialect.name], {
        "org": organization_id, "user": user_id, "month": budgets.period_of(now), "units": units,
        "now": now}).scalar_one()
