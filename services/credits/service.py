"""Nameko entrypoints of the credits service: thin; the rules live in ledger.py (grants, expiries, the
ledger), spends.py (a spend and its dry run), budgets.py (budget groups, what a member may still
spend) and alerts.py (budget alerts), the reactions to other services' events in reactions.py, the
right to use an agent in agent_access.py.

Each command runs in the unit of work the pipeline gives it (common.commands, common.unit_of_work): it
receives the open write transaction (`session`) and passes it, with the values its declared contract
(`input`) loaded, to the domain functions, which decide; the pipeline records the request as handled,
replays or stores the Idempotency-Key's answer and commits. The spend and the assignment of a member to a
budget group, which may ask another service between reading and writing, receive the UnitOfWork (`uow`,
`phases=True`) instead.

A request is decided here alone: permissions and memberships come from the service's own read models
(`self.memberships`, common.readmodels), the right to use an agent too (agent_access.py). Members and
orgs are asked only to confirm a refusal, never inside a write transaction (common.db). Each method declares
who may call it (common.commands); the pipeline checks that before the method's body runs.
"""
import logging
from functools import partial

from nameko.timer import timer

from common.auth import Auth
from common.commands import CREDENTIAL, OPTIONAL, PERSON, REQUIRED, SYSTEM, USES_AGENT, Partial, command, query
from common.config import settings
from common.contracts.alerts import AlertSettingsInput
from common.contracts.budgets import BudgetGroupInput
from common.contracts.credits import GrantInput, PaymentGrantInput, SpendInput
from common.db import Database
from common.events import CREDITS_QUEUE, change_event_or_none
from common.framework.consume import consume
from common.heap import FrozenStartupHeap
from common.membership_facts import MembershipFacts
from common.money import format_amount
from common.outbox import OutboxRelay
from common.permissions import Action, Scope
from common.readmodels import SNAPSHOT_PAGE, ReadModelFill
from common.rpc import service_proxy
from common.timeutil import utcnow
from services.credits import alerts, budgets, group_member_states, ledger, my_usage, reactions, spends
from services.credits.agent_access import AgentUse
from services.credits.models import READ_MODELS, HandledRequest, IdempotentRequest, OutboxEvent

log = logging.getLogger(__name__)

# How often the expiry job writes off credit past its date (spends and reads never count it either way).
CREDIT_EXPIRY_SWEEP_SECONDS = settings().credit_expiry_sweep_seconds


class CreditsService:
    name = "credits"

    auth = Auth()
    heap = FrozenStartupHeap()      # common.heap: fewer long garbage-collector pauses under load
    db = Database(handled_requests=HandledRequest, idempotent_requests=IdempotentRequest)
    outbox = OutboxRelay(OutboxEvent)
    members = service_proxy("members")       # only to confirm refusals (memberships)
    orgs = service_proxy("orgs")             # only to confirm refusals (agent_access.py)
    memberships = MembershipFacts(READ_MODELS, owner="members")
    fill = ReadModelFill(READ_MODELS)

    @query(CREDENTIAL)
    def ping(self, caller):
        self.fill.check()       # degraded until the read models were first filled
        return "pong"

    @property
    def agent_use(self):
        return AgentUse(self.db, READ_MODELS, self.memberships, lambda: self.orgs)

    # ---- balance, grants, ledger (Owner/Billing) ---------------------------------------------------
    @query(Action.VIEW_BILLING, key_scope=Scope.USAGE_READ)
    def get_credits(self, caller, organization_id):
        """Balance, this period's spend and the grants holding credit."""
        return ledger.credits_page(self.db, organization_id)

    @query(Action.VIEW_BILLING, key_scope=Scope.USAGE_READ)
    def list_ledger(self, caller, organization_id, kind=None, cursor=None, limit=None):
        return ledger.ledger_page(self.db, organization_id, kind, cursor, limit)

    @command(Action.GRANT_CREDITS, idempotency=OPTIONAL, input=GrantInput)
    def add_grant(self, caller, session, organization_id, amount, type, expires_at=None, idempotency_key=None):
        return ledger.add_grant(session, caller.identity, organization_id, amount, type, expires_at)

    @command(SYSTEM, input=PaymentGrantInput)
    def grant_payment(self, caller, session, organization_id, transaction_id, amount, buyer):
        """Paid credit for the billing service's successful payment `transaction_id`, granted once however
        often it is asked (answers `granted` False after the first). The platform only: billing calls it as
        the system (common.auth.AuthContext.as_system), no person or key can."""
        return ledger.grant_payment(session, organization_id, transaction_id, amount, buyer)

    @query(SYSTEM)
    def account_balance(self, caller, organization_id):
        """The organization's spendable balance now (exact decimal text), for the billing service deciding
        whether auto top-up, as it is switched on, must start at once. The platform only."""
        with self.db.read() as session:
            return format_amount(ledger.spendable_balance(session, organization_id, utcnow()))

    # ---- spending ----------------------------------------------------------------------------------
    @command(USES_AGENT, key_scope=Scope.USAGE_WRITE, idempotency=REQUIRED, input=SpendInput, phases=True)
    def spend(self, caller, uow, organization_id, agent_id, amount, idempotency_key, user_id=None):
        """Charge the caller's use of an agent, or, by an API key with usage:write, the use by the member
        `user_id` names (SPEC §9); returns {"spend", "replayed"}. 402 when the balance or the member's
        budget does not allow it. Phased (spends.py): it reads, may confirm a refusal with members or
        orgs, then writes; `uow` replays and stores the Idempotency-Key's answer there."""
        # The right to use the agent is decided by the spend itself (spends.py), from the read models.
        return spends.spend(uow, caller.identity, organization_id, agent_id, amount, user_id, access=self.agent_use)

    @query(USES_AGENT, key_scope=Scope.USAGE_WRITE)
    def evaluate_spend(self, caller, organization_id, agent_id, amount=None, user_id=None):
        """The dry run: the same checks as a spend, nothing charged."""
        return spends.evaluate_spend(self.db, caller.identity, organization_id, agent_id, amount, user_id,
                                     access=self.agent_use)

    @query(PERSON)
    def my_usage(self, caller, cursor=None, limit=None):
        """A page of the caller's organizations (in the organization list's order, with their names) and
        their usage this period in each, what they can still spend and what binds."""
        return my_usage.my_usage_page(self.db, caller.identity.id, cursor, limit)

    # ---- budget groups (Owner/Admin) ---------------------------------------------------------------
    @query(Action.MANAGE_BUDGET_GROUPS, key_scope=Scope.USAGE_READ)
    def list_budget_groups(self, caller, organization_id, cursor=None, limit=None):
        return budgets.list_groups(self.db, organization_id, cursor, limit)

    @command(Action.MANAGE_BUDGET_GROUPS, input={"fields": BudgetGroupInput})
    def create_budget_group(self, caller, session, organization_id, fields):
        return budgets.create_group(session, caller.identity, organization_id, fields)

    @query(Action.MANAGE_BUDGET_GROUPS, key_scope=Scope.USAGE_READ)
    def get_budget_group(self, caller, organization_id, group_id, cursor=None, limit=None):
        return budgets.get_group(self.db, organization_id, group_id, cursor, limit)

    @command(Action.MANAGE_BUDGET_GROUPS, input={"fields": Partial(BudgetGroupInput)})
    def update_budget_group(self, caller, session, organization_id, group_id, fields):
        return budgets.update_group(session, caller.identity, organization_id, group_id, fields)

    @command(Action.MANAGE_BUDGET_GROUPS)
    def delete_budget_group(self, caller, session, organization_id, group_id):
        budgets.delete_group(session, caller.identity, organization_id, group_id)

    @command(Action.MANAGE_BUDGET_GROUPS, phases=True)
    def add_budget_group_member(self, caller, uow, organization_id, group_id, user_id):
        """Put a member in the group (out of any other); returns {"membership", "created"}. The members'
        roles, which the builder limit needs, come from the memberships read model, confirmed with members
        for someone missing there: an RPC call between reading and writing, so the command is phased and
        writes through `uow` (budgets.add_member)."""
        roles_of = partial(self.memberships.roles_of, organization_id)
        return budgets.add_member(uow, caller.identity, organization_id, group_id, user_id, roles_of)

    @command(Action.MANAGE_BUDGET_GROUPS)
    def remove_budget_group_member(self, caller, session, organization_id, group_id, user_id):
        budgets.unassign_member(session, caller.identity, organization_id, group_id, user_id)

    @query(SYSTEM)
    def snapshot_budget_group_members(self, caller, after=None, limit=SNAPSHOT_PAGE):
        """A page of every member's budget group as a state, to fill or rebuild the members service's read
        model (the system only)."""
        return group_member_states.snapshot_group_members(self.db, after, limit)

    # ---- alerts (Owner/Admin/Billing): thresholds of members' budgets and the balance, alerts.py --------
    @query(Action.MANAGE_ALERTS, key_scope=Scope.USAGE_READ)
    def get_alert_settings(self, caller, organization_id):
        return alerts.get_settings(self.db, organization_id)

    @command(Action.MANAGE_ALERTS, input=AlertSettingsInput)
    def set_alert_settings(self, caller, session, organization_id, member_budget_percents, balance_floor):
        """Replace the settings: percents of a member's monthly limit, a balance floor (or null)."""
        return alerts.set_settings(session, caller.identity, organization_id, member_budget_percents, balance_floor)

    @query(Action.MANAGE_ALERTS, key_scope=Scope.USAGE_READ)
    def list_alerts(self, caller, organization_id, cursor=None, limit=None):
        """The alerts spends raised, newest first."""
        return alerts.list_alerts(self.db, organization_id, cursor, limit)

    # ---- jobs and events ---------------------------------------------------------------------------
    @timer(interval=CREDIT_EXPIRY_SWEEP_SECONDS)
    def expire_credits(self):
        expired = ledger.expire_due_grants(self.db)
        if expired:
            log.info("wrote off %d expired grant(s)", expired)

    # Acknowledged after the effects commit; an error (database down) requeues the event. A message
    # that is not a change event is logged and dropped: retrying cannot help.
    @consume(CREDITS_QUEUE, requeue_on_error=True)
    def on_change_event(self, message):
        event = change_event_or_none(message)
        if event is not None:
            reactions.handle_change_event(self.db, event)
