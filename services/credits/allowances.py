"""What a member may still spend (product rules §5): the monthly budget period, and the `Allowance` a spend
decides on — the organization's balance and the member's group's monthly limit, whichever binds first."""
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, select

from common.errors import PaymentRequired
from common.money import format_amount
from common.timeutil import as_utc, iso
from services.credits.models import BudgetGroup, BudgetGroupMember, MemberUsage

BALANCE, BUDGET_GROUP = "balance", "budget_group"    # what binds a spend (Allowance.binding_limit)


# ---- time: budgets count per calendar month, UTC (product rules §5) ------------------------------------------
def period_of(now):
    """The budget period `now` falls in, e.g. "2026-11"."""
    now = as_utc(now)
    return f"{now.year:04d}-{now.month:02d}"


def period_bounds(now):
    """(start, reset time) of the period `now` falls in: the first of this month and of the next, 00:00 UTC."""
    now = as_utc(now)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    resets_at = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return start, resets_at


# ---- what a member may still spend (the ledger's spend decision asks) ------------------------------
def budget_left(monthly_limit, used):
    """What a member may still spend this month under a group's limit: None without a limit, never
    below 0 (a limit lowered under what was already spent leaves 0, the past is not rewritten)."""
    return None if monthly_limit is None else max(0, monthly_limit - used)


@dataclass
class Allowance:
    """What binds a member's next spend: the organization's balance and their group's monthly limit."""
    balance: int
    used: int                      # the member's spend this period
    group: object | None           # the member's group: a row with id, name and monthly_limit, or None
    now: datetime

    @property
    def budget_left(self):
        return budget_left(self.group.monthly_limit if self.group else None, self.used)

    @property
    def can_spend(self):
        return self.balance if self.budget_left is None else min(self.balance, self.budget_left)

    @property
    def binding_limit(self):
        """Which limit `can_spend` comes from (the budget when both are equal: it is the member's own)."""
        left = self.budget_left
        return BUDGET_GROUP if left is not None and left <= self.balance else BALANCE

    def refusal(self, amount):
        """None if `amount` may be spent, else the 402 to answer (naming what binds)."""
        if amount <= self.can_spend:
            return None
        left = self.budget_left
        if left is not None and amount > left and (amount <= self.balance or left <= self.balance):
            budget = self.budget()
            return PaymentRequired(
                f"This would take you over your monthly budget of {budget['limit']} in the group "
                f"\"{budget['budget_group_name']}\" ({budget['used']} used); it resets at {budget['resets_at']}.",
                code="budget_exceeded", field="amount", details=dict(budget, requested=format_amount(amount)))
        return PaymentRequired("The organization does not have enough credit for this spend.",
                               code="insufficient_credits", field="amount",
                               details={"requested": format_amount(amount)})

    def budget(self):
        start, resets_at = period_bounds(self.now)
        group = self.group
        return {"budget_group_id": group.id if group else None, "budget_group_name": group.name if group else None,
                "limit": format_amount(group.monthly_limit) if group else None,
                "used": format_amount(self.used), "remaining": format_amount(self.budget_left),
                "period": period_of(self.now), "period_start": iso(start), "resets_at": iso(resets_at)}

    def as_dict(self):
        """What the member is told (the balance itself is for Owner/Billing: only what they can spend)."""
        return {"can_spend": format_amount(self.can_spend), "binding_limit": self.binding_limit,
                "budget": self.budget()}


def allowance(session, organization_id, user_id, balance, now):
    """The member's allowance when the organization holds `balance`: their group and usage this period."""
    group = member_group(session, organization_id, user_id)
    used = session.scalar(MEMBER_USAGE, {"org": organization_id, "user": user_id, "month": period_of(now)})
    return Allowance(balance=balance, used=used or 0, group=group, now=now)


def member_group(session, organization_id, user_id):
    """The member's budget group (a row: id, name, monthly_limit), or None. The statements below are built
    once, columns with bound parameters: every spend runs them (spends.py says why that matters)."""
    return session.execute(MEMBER_GROUP, {"org": organization_id, "user": user_id}).first()


MEMBER_GROUP = (select(BudgetGroup.id, BudgetGroup.name, BudgetGroup.monthly_limit)
                .join(BudgetGroupMember, BudgetGroupMember.group_id == BudgetGroup.id)
                .where(BudgetGroupMember.organization_id == bindparam("org"),
                       BudgetGroupMember.user_id == bindparam("user")))
MEMBER_USAGE = select(MemberUsage.used).where(
    MemberUsage.organization_id == bindparam("org"), MemberUsage.user_id == bindparam("user"),
    MemberUsage.period == bindparam("month"))
