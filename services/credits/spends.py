"""A spend and its dry run: the hot path of the product (every message a member sends to an agent).

`spend` reads top-down: who spends, may they use the agent, a stored answer to replay, what the budget
and the balance allow, then the charge. Everything it decides on besides the money is read first and
without a lock (the right to use the agent from the read models, a replayed Idempotency-Key, the
member's budget group, the alert settings, credit past its expiry); the money is decided under the
organization's account lock (ledger.py, "Concurrency"), which every spend of the organization waits
for, so it is held for as little as possible: the balance and the budget, the grants drawn, the ledger
entry, the member's usage, alerts crossed, the audit event and the stored answer, all or nothing.

The rules are `decide` (one spend, on the organization's Money), the same on both databases; what differs is
how the money is read and the decision written. On SQLite a read transaction, then the write one
(common.unit_of_work.UnitOfWork.read_then_write), which locks the account, reads the money and writes the
decision with the statements of spend_statements.py. On PostgreSQL one statement reads the facts with the
money, and spends of one organization that arrive together are decided together and written by one
statement that checks, under the account's row lock, that the money is still what they were decided on
(spend_batches.py: group commit per organization; docs/decisions.md 111).

The spend is the one command declared with `phases=True` (common.commands): it receives the command's
UnitOfWork, not an open write transaction, because it reads, may call another service, then writes. Its
amount comes validated by the declared contract (common.contracts.credits.SpendInput); the unit of work
gives the answer stored under the Idempotency-Key (`replay`, read phase), stores the new one with the
charge (`remember`, write phase) and records the RPC request as handled in the first write transaction.

A refusal from the read models is confirmed with their owners before it is given (agent_access.py);
that is an RPC call, made between the two phases, never inside a write transaction.

It runs again only in the one documented case: two requests with one Idempotency-Key committing at
once, where the loser's commit fails on the key's row and the pipeline runs the whole spend once more,
which replays the winner's answer (common.db.retry_on_unique_race); on PostgreSQL a batch finds such a key
before it writes, and the spend reads again and replays it.
"""
import uuid
from dataclasses import dataclass, field

from common import request_ids, tracing
from common.auth import SYSTEM_ACTOR, Identity, is_valid_user_id
from common.contracts import load
from common.contracts.credits import SpendInput
from common.errors import ValidationFailed, member_not_found
from common.events import change_event
from common.money import format_amount
from common.timeutil import iso, utcnow
from services.credits import alerts, allowances, spend_batches
from services.credits import spend_statements as sql
from services.credits.events import CREDITS_ALERT_RAISED, CREDITS_BALANCE_LOW, CREDITS_SPENT, balance_state
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
    money: object = None            # PostgreSQL: the organization's Money as read with the facts


@dataclass
class Charge:
    """One spend asked, as `decide` takes it: who, what, when and what was read for it. `context` is the request
    id and trace context of the worker that asked (its events carry them, whoever writes them: on PostgreSQL
    the spends of a batch are written by one of them, spend_batches.py)."""
    caller: object
    spender: object
    organization_id: str
    agent_id: str
    units: int
    facts: SpendFacts
    now: object
    entry_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    context: dict = field(default_factory=lambda: worker_context())

    def event(self, type, action, actor, target_type, target_id, after, state=None):
        if hasattr(actor, "as_actor"):
            actor = actor.as_actor()
        envelope = change_event(type, action, self.organization_id, actor, target_type, target_id, after=after,
                                occurred_at=self.now, state=state)
        for name in WORKER_CONTEXT:
            envelope.pop(name, None)
        envelope.update(self.context)
        return envelope


WORKER_CONTEXT = ("request_id", "traceparent", "tracestate")     # what common.events.change_event takes from it


def worker_context():
    """The current worker's request id and trace context, as common.events.change_event puts them in events."""
    context = {"request_id": request_ids.current()} if request_ids.current() else {}
    trace = tracing.current()
    if trace is not None:
        context["traceparent"] = trace.traceparent
        if trace.state:
            context["tracestate"] = trace.state
    return context


@dataclass
class Decision:
    """What an accepted spend writes: its `answer`, the ledger `entry`, the grants drawn ([grant id, remaining
    before, after]), the organization's `balance` after, the member's `usage` (user, period, before, after) and
    the `outbox` in order: (None, event), or (alert row, its event) written only if the alert's row goes in."""
    answer: dict
    entry: dict
    draws: list
    balance: int
    usage: tuple
    outbox: list


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
    if not uow.store.is_sqlite:
        return spend_batches.spend(uow, Charge(caller, spender, organization_id, agent_id, amount, None, now),
                                   access, _check_confirmed)
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
            charge = Charge(caller, spender, organization_id, agent_id, amount, facts, now)
            decision = decide(sql.money_under_lock(session.connection(), organization_id, spender.id, now), charge)
            if not isinstance(decision, Decision):
                raise decision
            sql.apply(session, decision, now)
            # A concurrent request with the same key fails here, on the key's primary key (see above).
            uow.remember(session, decision.answer)
            return {"spend": decision.answer, "replayed": False}


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


def decide(money, charge):
    """The rules of one spend, on both databases: the balance and the member's budget must allow its units
    (else the 402 that says which binds, returned, not raised), then the grants drawn in spend order, the
    ledger entry, the usage, the alerts crossed and the events. Takes the spend from `money` (sql.Money), so
    the next spend of a batch is decided on what this one leaves. Returns a Decision or the refusal."""
    user, units, now, group = charge.spender.id, charge.units, charge.now, charge.facts.group
    used = money.used.get(user, 0)
    allowance = allowances.Allowance(balance=money.balance, used=used, group=group, now=now)
    refusal = allowance.refusal(units)
    if refusal is not None:
        return refusal
    allocations, draws = _draw(money.grants, units, now, charge.organization_id)
    money.balance -= units
    money.used[user] = allowance.used = used + units
    balance, organization_id, entry_id = money.balance, charge.organization_id, charge.entry_id
    member = charge.spender.as_actor()        # the ledger names whose spend it is; the event, who made it
    entry = {"id": entry_id, "organization_id": organization_id, "kind": "spend", "amount": units,
             "balance_after": balance, "actor_id": member["id"], "actor_email": member.get("email") or None,
             "agent_id": charge.agent_id, "grant_id": None, "grant_type": None, "allocations": allocations,
             "occurred_at": now}
    answer = {"id": entry_id, "organization_id": organization_id, "agent_id": charge.agent_id, "user_id": user,
              "amount": format_amount(units), "occurred_at": iso(now), "budget": allowance.budget()}
    outbox = [(None, charge.event(CREDITS_SPENT, "create", charge.caller, "spend", entry_id, after={
        "amount": answer["amount"], "agent_id": charge.agent_id, "user_id": user}))]
    settings = charge.facts.alert_settings
    if settings is not None:     # thresholds this spend crossed (alerts.py): none, usually
        for alert, after in alerts.planned(settings, organization_id, user, group.monthly_limit if group else None,
                                           (used, used + units), (balance + units, balance), entry_id, now):
            outbox.append((alert, charge.event(CREDITS_ALERT_RAISED, "create", SYSTEM_ACTOR, "alert", alert["id"],
                                               after)))
        if settings.topup_threshold is not None and balance <= settings.topup_threshold:
            # billing tops up from this (topup_alerts.py)
            outbox.append((None, charge.event(CREDITS_BALANCE_LOW, "update", SYSTEM_ACTOR, "account", organization_id,
                                              {"balance": format_amount(balance)},
                                              state=balance_state(organization_id, balance))))
    return Decision(answer, entry, draws, balance, (user, money.period, used, used + units), outbox)


def _draw(grants, units, now, organization_id):
    """Take `units` from the grants (in spend order, product rules §4) live at `now`, lowering their remaining
    in place; returns the allocations ([{grant_id, type, amount}]) and the draws ([grant id, before, after])."""
    allocations, draws, left = [], [], units
    for grant in grants:
        grant_id, type, remaining, expires_at = grant[:4]
        if remaining <= 0 or (expires_at is not None and expires_at <= now):
            continue
        take = min(left, remaining)
        grant[2] = remaining - take
        draws.append([grant_id, remaining, remaining - take])
        allocations.append({"grant_id": grant_id, "type": type, "amount": format_amount(take)})
        left -= take
        if left == 0:
            return allocations, draws
    # The balance was checked under the account lock and equals the grants' sum: unreachable unless
    # the invariant is broken, and then charging must not go on.
    raise RuntimeError(f"account {organization_id}: grants hold less than the balance")


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
