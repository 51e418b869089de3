"""Tables of the members service: users as the gateway saw them, memberships with their roles and
versions, invitations and billing transfers, API keys, emails to send; idempotent and handled requests, processed
events (common.inbox), the outbox; the read models (common.readmodels) of which budget group each
member is in (owned by credits) and of organizations and agents (owned by orgs)."""
from sqlalchemy import JSON, DateTime, ForeignKeyConstraint, Index, Integer, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from common.handled_requests import HandledRequestMixin
from common.idempotency import IdempotencyMixin
from common.inbox import ProcessedEventMixin
from common.outbox import OutboxMixin
from common.readmodels import (
    AgentAccessMixin,
    BudgetGroupMemberFactMixin,
    OrganizationFactMixin,
    ReadModelFilledMixin,
    ReadModels,
)

PENDING = "pending"


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)   # the token's `sub`
    email: Mapped[str] = mapped_column(String(320), index=True)       # stored lower-case
    name: Mapped[str] = mapped_column(String(200))
    # The name case-folded (Python's casefold, kept by _fold_name): the member list sorts by it in SQL.
    name_key: Mapped[str] = mapped_column(String(600))
    created_at = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at = mapped_column(DateTime(timezone=True), nullable=False)

    @validates("name")
    def _fold_name(self, _, name):
        self.name_key = name.casefold()
        return name


class Membership(Base):
    __tablename__ = "memberships"

    organization_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)
    joined_at = mapped_column(DateTime(timezone=True), nullable=False)

    role_rows = relationship("MemberRole", cascade="all, delete-orphan", lazy="selectin")

    @property
    def roles(self):
        return [r.role for r in self.role_rows]


class MemberRole(Base):
    """One row per role held: the last-Owner and Billing-holder rules are plain counting queries."""
    __tablename__ = "member_roles"
    __table_args__ = (
        ForeignKeyConstraint(["organization_id", "user_id"],
                             ["memberships.organization_id", "memberships.user_id"], ondelete="CASCADE"),
    )

    organization_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)


class MembershipVersion(Base):
    """The version of one person's membership of one organization, raised by every change to it (other
    services' read models apply a membership's state only if its version is newer). Never deleted, also
    not when the membership or the organization goes: a membership removed and added again continues its
    count, so a late state from before the removal cannot bring the old roles back. A membership from
    before versions existed has no row: version 0."""
    __tablename__ = "membership_versions"

    organization_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class Invitation(Base):
    """pending -> accepted | rejected | revoked | expired. The partial unique index is what makes
    "one pending invitation per organization and email" hold when two admins invite at once."""
    __tablename__ = "invitations"
    __table_args__ = (
        Index("uq_invitations_one_pending", "organization_id", "email", unique=True,
              sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36), index=True)
    # Copied at invite time: the invitee is no member yet, so cannot ask orgs for the name.
    organization_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), index=True)           # stored lower-case
    roles: Mapped[list] = mapped_column(JSON)
    agent_ids: Mapped[list] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    invited_by: Mapped[str] = mapped_column(String(128))
    invited_by_email: Mapped[str] = mapped_column(String(320))
    send_count: Mapped[int] = mapped_column(Integer)
    created_at = mapped_column(DateTime(timezone=True), nullable=False)
    last_sent_at = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at = mapped_column(DateTime(timezone=True), nullable=False, index=True)
    ended_at = mapped_column(DateTime(timezone=True), nullable=True)
    accepted_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class BillingTransfer(Base):
    """pending -> accepted | declined | cancelled; at most one pending per organization."""
    __tablename__ = "billing_transfers"
    __table_args__ = (
        Index("uq_billing_transfers_one_pending", "organization_id", unique=True,
              sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36), index=True)
    from_user_id: Mapped[str] = mapped_column(String(128))
    to_user_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    created_at = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at = mapped_column(DateTime(timezone=True), nullable=True)


class IdempotentRequest(IdempotencyMixin, Base):
    pass


class OutboxEvent(OutboxMixin, Base):
    pass


class HandledRequest(HandledRequestMixin, Base):
    """RPC requests whose command committed (common.handled_requests): a redelivery cannot run it twice."""


class ProcessedEvent(ProcessedEventMixin, Base):
    """Other services' change events this service has reacted to (common.inbox)."""


class ApiKey(Base):
    """An organization's API key (services/members/api_keys.py): the keyed hash of its secret, never the
    secret; `secret_start` (4 characters) only helps people tell their keys apart in the list."""
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_organization", "organization_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[list] = mapped_column(JSON)
    secret_hash: Mapped[str] = mapped_column(String(64))
    secret_start: Mapped[str] = mapped_column(String(4))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class OutgoingEmail(Base):
    """An email to send (services/members/emails.py): stored by the reaction to the event that calls for
    it (its id is the event's, so a redelivered event stores none), sent by the job, tried again on a
    failure until `gave_up_at`."""
    __tablename__ = "outgoing_emails"
    __table_args__ = (Index("ix_outgoing_emails_due", "sent_at", "gave_up_at", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))                # the event type that called for it
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(400))
    body: Mapped[str] = mapped_column(String(4000))
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)   # for the log lines
    attempts: Mapped[int] = mapped_column(Integer)
    created_at = mapped_column(DateTime(timezone=True), nullable=False)
    next_attempt_at = mapped_column(DateTime(timezone=True), nullable=False)
    sent_at = mapped_column(DateTime(timezone=True), nullable=True)
    gave_up_at = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(400), nullable=True)


# ---- read models (common.readmodels): fed by credits' change events ------------------------------------
class BudgetGroupMemberFact(BudgetGroupMemberFactMixin, Base):
    """Which budget group each member is in (owned by credits): the member list shows it."""


class OrganizationFact(OrganizationFactMixin, Base):
    """Each organization's name, type and liveness (owned by orgs): inviting and leaving decide on them."""


class AgentAccess(AgentAccessMixin, Base):
    """Each agent's organization and liveness (owned by orgs): an invitation names only live agents."""


class ReadModelFilled(ReadModelFilledMixin, Base):
    pass


READ_MODELS = ReadModels(filled=ReadModelFilled, budget_group_members=BudgetGroupMemberFact,
                         organizations=OrganizationFact, agents=AgentAccess)
