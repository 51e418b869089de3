"""Credits' commands run as the command pipeline runs them (common.commands, common.unit_of_work), for the
tests that call the domain functions themselves (to pass `now`, or to set a scene): the arguments loaded
by the entrypoint's declared `input`, a domain function that writes given an open write transaction, the
spend given a UnitOfWork. What the pipeline adds around them (permissions, the Idempotency-Key's
fingerprint, the retry of a unique-key race) is tested through the entrypoints (credits_worker)."""
from common import idempotency
from common.commands import declaration_of, validated
from common.unit_of_work import UnitOfWork
from services.credits import alerts, budgets, ledger, spends
from services.credits.service import CreditsService


def loaded(method, **arguments):
    """`arguments` as the declared input of CreditsService.`method` loads them (a 422 when it refuses)."""
    return validated(declaration_of(getattr(CreditsService, method)).input, arguments)


def written(store, work, *args, **kwargs):
    """`work(session, *args, **kwargs)` in one write transaction of `store`, as a command's body runs."""
    with store.write() as session:
        return work(session, *args, **kwargs)


def unit_of_work(store, who, key=None, operation="test"):
    """A command's UnitOfWork on `store`: `who` owns the Idempotency-Key `key` (None: no key)."""
    return UnitOfWork(store, CreditsService.db, who.id, key, operation)


def add_grant(store, who, org, amount, type, expires_at=None, key=None, now=None):
    """A grant as add_grant makes it (an answer stored under `key`, replayed to a retry with it)."""
    values = loaded("add_grant", amount=amount, type=type, expires_at=expires_at)
    operation = idempotency.operation("add_grant", {"organization_id": org, **values})
    return unit_of_work(store, who, key, operation).run(ledger.add_grant, who, org, values["amount"], values["type"],
                                                        values["expires_at"], now)


def spend(store, who, org, agent_id, amount, key, user_id=None, access=None, now=None):
    """A spend as the spend command makes it: its amount loaded, in a UnitOfWork whose key is
    fingerprinted with the spend's values; returns {"spend", "replayed"}."""
    values = loaded("spend", amount=amount)
    operation = idempotency.operation("spend", {"organization_id": org, "agent_id": agent_id,
                                                "amount": values["amount"], "user_id": user_id})
    return spends.spend(unit_of_work(store, who, key, operation), who, org, agent_id, values["amount"], user_id,
                        access=access, now=now)


def create_group(store, who, org, data, now=None):
    fields = loaded("create_budget_group", fields=data)["fields"]
    return written(store, budgets.create_group, who, org, fields, now=now)


def update_group(store, who, org, group_id, data, now=None):
    fields = loaded("update_budget_group", fields=data)["fields"]
    return written(store, budgets.update_group, who, org, group_id, fields, now=now)


def delete_group(store, who, org, group_id, now=None):
    return written(store, budgets.delete_group, who, org, group_id, now=now)


def assign_member(store, who, org, group_id, user_id, is_builder=False, builders=0, snapshot=None, now=None):
    """Put someone in the group directly (budgets.assign_member), against `snapshot` (default: the group now)."""
    snapshot = snapshot if snapshot is not None else budgets.group_snapshot(store, org, group_id)
    return written(store, budgets.assign_member, who, org, group_id, user_id, is_builder, builders, snapshot,
                   now=now)


def unassign_member(store, who, org, group_id, user_id, now=None):
    return written(store, budgets.unassign_member, who, org, group_id, user_id, now=now)


def add_member(store, who, org, group_id, user_id, roles_of, now=None):
    return budgets.add_member(unit_of_work(store, who), who, org, group_id, user_id, roles_of, now=now)


def set_alert_settings(store, who, org, percents, floor, now=None):
    values = loaded("set_alert_settings", member_budget_percents=percents, balance_floor=floor)
    return written(store, alerts.set_settings, who, org, values["member_budget_percents"], values["balance_floor"],
                   now=now)
