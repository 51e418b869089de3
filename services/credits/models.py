"""Tables of the credits service: each organization's account and ledger, its grants, budget groups and
their members, each member's usage per month, alert settings and the alerts raised, idempotent requests,
processed events, the outbox, and
the read models a spend is decided on (memberships from members, agents' access from orgs:
common.readmodels), and organizations' names and order (from orgs) for "My usage".

Amounts are whole numbers of ten-thousandths of a credit ("units", common.money), never floats.
Invariant, kept in every transaction that touches an account (tests check it):
    account.balance == sum of live grants' remaining == sum of the ledger (grants - spends - expiries)
"""
from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.handled_requests import HandledRequestMixin
from common.idempotency import IdempotencyMixin
from common.inbox import ProcessedEventMixin
from common.outbox import OutboxMixin
from common.readmodels import (
    AgentAccessMixin,
    MembershipFactMixin,
    OrganizationFactMixin,
    ReadModelFilledMixin,
    ReadModels,
    RetiredOrganizationMixin,
)


class Base(DeclarativeBase):
    pass


class Account(Base):
    """One per organization, created on first use. Its row is the lock that every change to the
    organization's money takes first (SELECT ... FOR UPDATE on PostgreSQL; SQLite has one writer), so
    spends, grants and expiries of one organization happen one after the other."""
    __tablename__ = "accounts"

    organization_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at = mapped_column(DateTime(timezone=True), nullable=False)


class Grant(Base):
    """Credit that came in: `free` (may expire) or `paid`. Spends draw `remaining` down (product rules §4 order:
    free first, then the soonest expiring); an expiry writes what is left off."""
    __tablename__ = "grants"
    __table_args__ = (Index("ix_grants_spendable", "organization_id", "remaining"),
                      Index("uq_grants_transaction_id", "transaction_id", unique=True))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    type: Mapped[str] = mapped_column(String(8))                 # free | paid
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    expires_at = mapped_column(DateTime(timezone=True), nullable=True)
    expired_at = mapped_column(DateTime(timezone=True), nullable=True)   # when the rest was written off
    created_by: Mapped[str] = mapped_column(String(128))
    created_at = mapped_column(DateTime(timezone=True), nullable=False)
    # The billing service's transaction this paid credit was bought with: unique, so a payment is granted
    # once, whichever of the provider's answer, its webhook or the reconciliation asks first.
    transaction_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class LedgerEntry(Base):
    """Every grant, spend and expiry, with who, when and the balance after (product rules §4). Never changed."""
    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_organization", "organization_id", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)   # order; never shown
    id: Mapped[str] = mapped_column(String(36), unique=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(8))                 # grant | spend | expiry
    amount: Mapped[int] = mapped_column(BigInteger)              # positive; `kind` says which way
    balance_after: Mapped[int] = mapped_column(BigInteger)
    actor_id: Mapped[str] = mapped_column(String(128))           # the member, or "system" for an expiry
    actor_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    agent_id: Mapped[str | None] = mapped_column(String(36), nullable=True)       # spends
    grant_id: Mapped[str | None] = mapped_column(String(36), nullable=True)       # grants and expiries
    grant_type: Mapped[str | None] = mapped_column(String(8), nullable=True)
    allocations: Mapped[list | None] = mapped_column(JSON, nullable=True)         # spends: grants drawn
    occurred_at = mapped_column(DateTime(timezone=True), nullable=False)


class MemberUsage(Base):
    """What a member spent in an organization in one calendar month (UTC), e.g. period "2026-11".
    Kept whatever group they are in, so moving groups or changing a limit never rewrites the past."""
    __tablename__ = "member_usage"

    organization_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at = mapped_column(DateTime(timezone=True), nullable=False)


class BudgetGroup(Base):
    __tablename__ = "budget_groups"
    __table_args__ = (Index("ix_budget_groups_organization", "organization_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(200))
    monthly_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)   # None: no limit
    builder_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)      # None: any number
    created_by: Mapped[str] = mapped_column(String(128))
    created_at = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at = mapped_column(DateTime(timezone=True), nullable=False)


class BudgetGroupMember(Base):
    """The primary key (organization, user) is what keeps a member in at most one group."""
    __tablename__ = "budget_group_members"

    organization_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(36), ForeignKey("budget_groups.id", ondelete="CASCADE"),
                                          index=True)
    added_by: Mapped[str] = mapped_column(String(128))
    added_at = mapped_column(DateTime(timezone=True), nullable=False)


class BudgetGroupMemberVersion(Base):
    """The version of which group one member of one organization is in, raised by every change to it (the
    members service's read model applies a state only if its version is newer: group_member_states.py).
    Never deleted, so a member taken out and put in again continues the count."""
    __tablename__ = "budget_group_member_versions"

    organization_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class AlertSettings(Base):
    """What an organization wants to be alerted of (alerts.py): percents of a member's monthly limit and a
    balance floor. No row, or a row with neither, means no alerts, and spends then skip alerts entirely."""
    __tablename__ = "alert_settings"

    organization_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    member_budget_percents: Mapped[list] = mapped_column(JSON)         # e.g. [80, 100]; [] for none
    balance_floor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)   # units; None: no floor
    # The billing service's auto top-up threshold while auto top-up is on (topup_alerts.py): a spend that leaves
    # the balance at or below it says so (credits.balance_low). `topup_as_of`: the billing change it came with.
    topup_threshold: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    topup_as_of = mapped_column(DateTime(timezone=True), nullable=True)
    updated_by: Mapped[str] = mapped_column(String(128))
    updated_at = mapped_column(DateTime(timezone=True), nullable=False)


class Alert(Base):
    """A threshold a spend crossed (alerts.py). The unique key is the "once per period" rule: a second
    crossing of the same threshold in the same month (a replica, a retried transaction, a limit lowered
    and raised) inserts nothing and so emits nothing. `user_id` is '' for the balance floor, so that the
    key has no NULL in it (NULLs are never equal in a unique key)."""
    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("organization_id", "period", "kind", "user_id", "threshold",
                                       name="uq_alerts_crossing"),
                      Index("ix_alerts_organization", "organization_id", "seq"))

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)   # order; never shown
    id: Mapped[str] = mapped_column(String(36), unique=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    period: Mapped[str] = mapped_column(String(7))               # the calendar month (UTC), e.g. "2026-11"
    kind: Mapped[str] = mapped_column(String(32))                # member_budget | balance_floor | auto_topup_…
    user_id: Mapped[str] = mapped_column(String(128))            # the member; '' for the balance floor
    threshold: Mapped[int] = mapped_column(BigInteger)           # a percent, or the floor in units
    value: Mapped[int] = mapped_column(BigInteger)               # the member's usage or the balance, after
    limit_amount: Mapped[int] = mapped_column(BigInteger)        # the member's monthly limit, or the floor
    spend_id: Mapped[str] = mapped_column(String(36))            # the ledger entry of the spend that crossed
    raised_at = mapped_column(DateTime(timezone=True), nullable=False)


class IdempotentRequest(IdempotencyMixin, Base):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


class OutboxEvent(OutboxMixin, Base):
    pass


class HandledRequest(HandledRequestMixin, Base):
    """RPC requests whose command committed (common.handled_requests): a redelivery cannot run it twice."""


# ---- read models (common.readmodels): fed by members' and orgs' change events ----------------------
class MembershipFact(MembershipFactMixin, Base):
    """Who is a member of which organization with which roles (owned by members)."""


class RetiredOrganization(RetiredOrganizationMixin, Base):
    pass


class AgentAccess(AgentAccessMixin, Base):
    """Each agent's organization, contributors and assignees (owned by orgs): who may use it."""


class OrganizationFact(OrganizationFactMixin, Base):
    """Each organization's name, type, creation time, liveness (owned by orgs): "My usage" lists them."""


class ReadModelFilled(ReadModelFilledMixin, Base):
    pass


READ_MODELS = ReadModels(filled=ReadModelFilled, memberships=MembershipFact, retired=RetiredOrganization,
                         agents=AgentAccess, organizations=OrganizationFact)
