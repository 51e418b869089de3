"""Tables of the audit service: one immutable entry per change event, and its changed fields, chained per
organization (chain.py: `chain_seq`, `prev_hash`, `hash`; the head of each chain; signed checkpoints of
the heads); and the read model of memberships (common.readmodels) its permission checks are decided on.
No outbox: the audit service emits no events (events.py)."""
from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from common.readmodels import MembershipFactMixin, ReadModelFilledMixin, ReadModels, RetiredOrganizationMixin


class Base(DeclarativeBase):
    pass


class AuditEntry(Base):
    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_org_time", "organization_id", "occurred_at", "seq"),
                      # The chain never forks: one entry per position of an organization's chain.
                      Index("ux_audit_chain_position", "organization_id", "chain_seq", unique=True))

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)   # the inbox (reactions.py): stored once
    type: Mapped[str] = mapped_column(String(100))
    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(128))
    actor_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    actor_name: Mapped[str | None] = mapped_column(String(200), nullable=True)   # an API key's name
    organization_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    correlation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    occurred_at = mapped_column(DateTime(timezone=True), nullable=False)
    received_at = mapped_column(DateTime(timezone=True), nullable=False)
    # The hash chain (chain.py): the entry's position in its organization's chain (the API's `seq`), the
    # hash of the entry before it, its own. Stored with the entry (trail.Chains).
    chain_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(String(64), nullable=True)

    changes = relationship("AuditChange", order_by="AuditChange.id", lazy="selectin")


class AuditChange(Base):
    """One changed field of an entry: makes `?field=` a plain indexed query."""
    __tablename__ = "audit_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_seq: Mapped[int] = mapped_column(ForeignKey("audit_entries.seq"), index=True)
    field: Mapped[str] = mapped_column(String(100), index=True)
    old_value = mapped_column(JSON, nullable=True)
    new_value = mapped_column(JSON, nullable=True)
    # The values as plain text (strings as they are, anything else as JSON), so that the agent trail
    # can search them (`?old_value=` / `?new_value=`) the same way on SQLite and PostgreSQL.
    old_text = mapped_column(Text, nullable=True)
    new_text = mapped_column(Text, nullable=True)


class ChainHead(Base):
    """The last entry of each organization's chain ("" for the entries without an organization): locked
    while entries are added, so that concurrent consumers (replicas) append one after the other."""
    __tablename__ = "audit_chain_heads"

    chain_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    checkpointed_seq: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class Checkpoint(Base):
    """A signed chain head (chain.sign_checkpoint): what the audit service vouched for, and when."""
    __tablename__ = "audit_checkpoints"
    __table_args__ = (Index("ux_audit_checkpoint", "chain_id", "seq", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chain_id: Mapped[str] = mapped_column(String(36), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    signed_at: Mapped[str] = mapped_column(String(32), nullable=False)     # as signed: the API's time text
    key_id: Mapped[str] = mapped_column(String(16), nullable=False)
    signature: Mapped[str] = mapped_column(String(128), nullable=False)


# ---- the read model: members' facts, fed by the same events the trail stores (reactions.py) ----------
class MembershipFact(MembershipFactMixin, Base):
    pass


class RetiredOrganization(RetiredOrganizationMixin, Base):
    pass


class ReadModelFilled(ReadModelFilledMixin, Base):
    pass


READ_MODELS = ReadModels(filled=ReadModelFilled, memberships=MembershipFact, retired=RetiredOrganization)
