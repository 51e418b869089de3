"""A spend and its dry run: the hot path of the product (every message a member sends to an agent).

`spend` reads top-down: who spends, may they use the agent, a stored answer to replay, what the budget
and the balance allow, then the charge. Everything it decides on besides the money is read first and
without a lock (the right to use the agent from the read models, a replayed Idempotency-Key, the
member's budget group, the alert settings, credit past its expiry); the money is decided under the
organization's account lock (ledger.py, "Concurrency"), which every spend of the organization waits
for, so it is held for as few statements as possible (spend_statements.py): the balance and the budget,
the grants drawn, the ledger entry, the member's usage, alerts crossed, the audit event and the stored
answer, all or nothing. On PostgreSQL both phases are one transaction on one connection; on SQLite a
read transaction, then the write one (common.unit_of_work.UnitOfWork.read_then_write).

The spend is the one command declared with `phases=True` (common.commands): it receives the command's
UnitOfWork, not an open write transaction, because it reads, may call another service, then writes. Its
amount comes validated by the declared contract (common.contracts.credits.SpendInput); the unit of work
gives the answer stored under the Idempotency-Key (`replay`, read phase), stores the new one with the
charge (`remember`, write phase) and records the RPC request as handled in the first write transaction.

A refusal from the read models is confirmed with their owners before it is given (agent_access.py);
that is an RPC call, made between the two phases, never inside a write transaction.

It runs again only in the one documented case: two requests with one Idempotency-Key committing at
once, where the loser's commit fails on the key's row and the pipeline runs the whole spend once more,
which replays the winner's answer (common.db.retry_on_unique_race).
"""
import uuid
from dataclasses import dataclass

from common.auth import SYSTEM_ACTOR, Identity, is_valid_user_id
from common.contracts import load
from common.contracts.credits import SpendInput
from common.errors import ValidationFailed, member_not_found
from common.money import format_amount
from common.timeutil import iso, utcnow
from services.credits import alerts, allowances
from services.credits import spend_statements as sql
from services.credits.events import CREDITS_BALANCE_LOW, CREDITS_SPENT, balance_state, emit
from services.credits.ledger import spendable_balance, write_off_due


def spender_of(caller, user_id):
    """Whose spend it is: an API key's (SPEC §9: its scope usage:write in its own organization was checked
    by the pipeline, common.commands) is the member `user_id` names, decided as theirs; a person's is their
    own (`user_id` absent or their own id)."""
    if caller.is_key:
        if not is_valid_user_id(user_id):
            raise ValidationFailed("A spend by API key names the member it is made for in user_id.",
                                   code="user_id_required", field="user_id")
        return Identity(user_id, "", "")
    if user_id is not None and user_id != caller.id:
        raise ValidationFailed("user_id is for API keys spending on a member's behalf; a member spends as "
                               "themselves.", code="user_id_not_allowed", field="user_id")
    return caller


@dataclass
class SpendFacts:
    """What a spend decides on besides the money, read before the account lock."""
    replay: dict | None
    group: object                   # the member's budget group (allowances.member_group), or None
    alert_settings: object          # alerts.settings_of, or None: no alerts to check
    expired_credit: bool            # credit past its expiry not written off yet


def spend(uow, caller, organization_id, agent_id, amount, user_id=None, access=None, now=None):
    """Charge the organization for a member's use of an agent: the caller's own, or, for an API key, the
    member's that `user_id` names, decided exactly as theirs (the key is then the event's actor and owns
    the Idempotency-Key, which the pipeline requires: common.commands). `uow` is the command's UnitOfWork
    (common.unit_of_work), `amount` in units as the declared contract loaded it. `access`
    (agent_access.AgentUse) decides the right to use the agent; None when the caller decided it already.
    Returns {"spend", "replayed"}; 402 when the balance or the member's monthly budget does not allow the
    amount (nothing changes then)."""
    now = now or utcnow()
    spender = spender_of(caller, user_id)
    with uow.read_then_write() as phases:
        with phases.read() as session:
            refusal = access.refusal_in(session, spender.id, organization_id, agent_id) if access else None
            facts = _read_facts(session, uow, organization_id, spender, now)
        if refusal is not None:
            _check_confirmed(access, caller, refusal, spender, organization_id, agent_id)
        if facts.replay is not None:
            return {"spend": facts.replay, "replayed": True}
        if facts.expired_credit:
            with uow.write() as session:        # rare: its own transaction, first
                write_off_due(session, organization_id, now)
        with phases.write() as session:
            answer = _charge(session, caller, spender, organization_id, agent_id, amount, facts, now)
            # A concurrent request with the same key fails here, on the key's primary key (see above).
            uow.remember(session, answer)
            return {"spend": answer, "replayed": False}


def _read_facts(session, uow, organization_id, spender, now):
    return SpendFacts(
        replay=uow.replay(session),
        group=allowances.member_group(session, organization_id, spender.id),
        alert_settings=alerts.settings_of(session, organization_id),
        expired_credit=session.execute(sql.ANY_EXPIRED, {"org": organization_id, "now": now}).first() is not None)


def _check_confirmed(access, caller, refusal, spender, organization_id, agent_id):
    """Raise the refusal once the owners confirmed it (returns when their newer facts allow the use). A key's
    spend for someone who is not a member of its organization is told so: the organization is the key's own."""
    refusal = access.confirmed_refusal(spender.id, organization_id, agent_id, refusal)
    if refusal is None:
        return
    if caller.is_key and refusal.code == "organization_not_found":
        raise member_not_found()
    raise refusal


def _charge(session, caller, spender, organization_id, agent_id, units, facts, now):
    """The money, under the account lock: the balance and the budget must allow `units`, or the 402 says
    which binds (the usage just added rolls back with it). Returns the spend's answer."""
    connection = session.connection()
    balance = sql.lock_account(connection, organization_id, now)
    used = sql.add_usage(connection, organization_id, spender.id, units, now)     # this spend included
    allowance = allowances.Allowance(balance=balance, used=used - units, group=facts.group, now=now)
    refusal = allowance.refusal(units)
    if refusal is not None:
        raise refusal
    allocations = sql.draw(connection, organization_id, units, now)
    balance -= units
    connection.execute(sql.SET_BALANCE, {"org": organization_id, "new_balance": balance, "now": now})
    allowance.used = used
    entry_id = str(uuid.uuid4())
    member = spender.as_actor()        # the ledger names whose spend it is; the event, who made it
    connection.execute(sql.ADD_ENTRY, {
        "id": entry_id, "organization_id": organization_id, "kind": "spend", "amount": units,
        "balance_after": balance, "actor_id": member["id"], "actor_email": member.get("email") or None,
        "agent_id": agent_id, "grant_id": None, "grant_type": None, "allocations": allocations, "occurred_at": now})
    answer = {"id": entry_id, "organization_id": organization_id, "agent_id": agent_id, "user_id": spender.id,
              "amount": format_amount(units), "occurred_at": iso(now), "budget": allowance.budget()}
    emit(session, CREDITS_SPENT, "create", organization_id, caller, "spend", entry_id,
         after={"amount": answer["amount"], "agent_id": agent_id, "user_id": spender.id}, occurred_at=now)
    if facts.alert_settings is not None:     # thresholds this spend crossed (alerts.py): none, usually
        alerts.record_crossings(session, connection, facts.alert_settings, organization_id, spender.id,
                                facts.group.monthly_limit if facts.group else None, (used - units, used),
                                (balance + units, balance), entry_id, now)
        topup = facts.alert_settings.topup_threshold
        if topup is not None and balance <= topup:      # billing tops up from this (topup_alerts.py)
            emit(session, CREDITS_BALANCE_LOW, "update", organization_id, SYSTEM_ACTOR, "account", organization_id,
                 after={"balance": format_amount(balance)}, occurred_at=now,
                 state=balance_state(organization_id, balance))
    return answer


def evaluate_spend(store, caller, organization_id, agent_id, amount=None, user_id=None, access=None, now=None):
    """The dry run of a spend: would it be accepted now, and if not, why (nothing is charged)."""
    now = now or utcnow()
    units = load(SpendInput, {"amount": amount})["amount"] if amount is not None else None
    spender = spender_of(caller, user_id)
    with store.read() as session:
        refusal = access.refusal_in(session, spender.id, organization_id, agent_id) if access else None
        allowance = allowances.allowance(session, organization_id, spender.id,
                                      spendable_balance(session, organization_id, now), now)
    if refusal is not None:
        _check_confirmed(access, caller, refusal, spender, organization_id, agent_id)
    answer = dict(allowance.as_dict(), dry_run=True, organization_id=organization_id, agent_id=agent_id,
                  amount=None, allowed=None, refusal=None)
    if units is not None:
        refusal = allowance.refusal(units)
        answer.update(amount=format_amount(units), allowed=refusal is None,
                      refusal=refusal.to_dict()["error"] if refusal else None)
    return answer
