"""Tables of the orgs service: organizations, each user's active organization, idempotent requests."""
from sqlalchemy import DateTime, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.idempotency import IdempotencyMixin
from common.outbox import OutboxMixin


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


class ActiveOrganization(Base):
    __tablename__ = "active_organizations"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36), index=True)
    updated_at = mapped_column(DateTime(timezone=True), nullable=False)


class IdempotentRequest(IdempotencyMixin, Base):
    pass


class OutboxEvent(OutboxMixin, Base):
    pass
