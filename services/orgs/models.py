"""Tables of the orgs service: organizations, each user's active organization, agents (with their
contributors and assignees), idempotent requests, processed events, the outbox; and the read model of
memberships (common.readmodels) its permission checks are decided on."""
from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from common.handled_requests import HandledRequestMixin
from common.idempotency import IdempotencyMixin
from common.inbox import ProcessedEventMixin
from common.outbox import OutboxMixin
from common.readmodels import MembershipFactMixin, ReadModelFilledMixin, ReadModels


class Base(DeclarativeBase):
    pass


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))                      # individual | collective
    # Set only for Individual organizations: the unique key that makes "one per user" hold under races.
    individual_user_id: Mapped[str | None] = mapped_column(String(128), unique=True, nullable=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at = mapped_column(DateTime(timezone=True), nullable=False)
    # Deleted organizations are kept (their id stays taken, their audit trail stays meaningful).
    deleted_at = mapped_column(DateTime(timezone=True), nullable=True)
    # Counts its changes (created, renamed, deleted): the version its events' `state` carries, so other
    # services' read models of organizations keep only the newest (organization_states.py).
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ActiveOrganization(Base):
    __tablename__ = "active_organizations"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36), index=True)
    updated_at = mapped_column(DateTime(timezone=True), nullable=False)


class Agent(Base):
    """An agent belongs to an organization, not to a person (product rules §6): it stays when its builder leaves,
    and a transfer changes `organization_id` (a move, not a copy)."""
    __tablename__ = "agents"
    __table_args__ = (Index("ix_agents_organization", "organization_id", "deleted_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(100), default="")
    mission: Mapped[str] = mapped_column(Text, default="")
    welcome_message: Mapped[str] = mapped_column(Text, default="")
    instructions: Mapped[str] = mapped_column(Text, default="")
    avatar_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at = mapped_column(DateTime(timezone=True), nullable=False)
    # Deleted agents are kept so that their id stays taken and their trail keeps its subject.
    deleted_at = mapped_column(DateTime(timezone=True), nullable=True)
    # Counts the changes of the agent's access (organization, contributors, assignees, deletion): the
    # version its events' `state` carries, so other services' read models keep only the newest.
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    contributors = relationship("AgentContributor", order_by="AgentContributor.added_at", lazy="selectin",
                                cascade="all, delete-orphan")
    assignees = relationship("AgentAssignee", order_by="AgentAssignee.added_at", lazy="selectin",
                             cascade="all, delete-orphan")


class AgentPersonMixin:
    """A person with a place on one agent, who gave it to them and when."""
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)
    added_by: Mapped[str] = mapped_column(String(128))
    added_at = mapped_column(DateTime(timezone=True), nullable=False)


class AgentContributor(AgentPersonMixin, Base):
    """A Builder allowed to edit one agent."""
    __tablename__ = "agent_contributors"


class AgentAssignee(AgentPersonMixin, Base):
    """A member allowed to use one agent."""
    __tablename__ = "agent_assignees"


class IdempotentRequest(IdempotencyMixin, Base):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    """Other services' change events this service has reacted to (common.inbox)."""


class OutboxEvent(OutboxMixin, Base):
    pass


class HandledRequest(HandledRequestMixin, Base):
    """RPC requests whose command committed (common.handled_requests): a redelivery cannot run it twice."""


# ---- the read model: members' facts, fed by members' events (reactions.py) ------------------------------
# No table of retired organizations: orgs deletes organizations itself, so its lookups of memberships
# skip those of its deleted organizations from the moment of the deletion (404 as for any organization
# one does not belong to, never 403).
class MembershipFact(MembershipFactMixin, Base):
    pass


class ReadModelFilled(ReadModelFilledMixin, Base):
    pass


READ_MODELS = ReadModels(filled=ReadModelFilled, memberships=MembershipFact,
                         retired_ids=select(Organization.id).where(Organization.deleted_at.is_not(None)))
