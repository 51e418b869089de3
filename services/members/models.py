"""Tables of the members service: users as the gateway saw them, memberships with their roles."""
from sqlalchemy import DateTime, ForeignKeyConstraint, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from common.outbox import OutboxMixin


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)   # the token's `sub`
    email: Mapped[str] = mapped_column(String(320), index=True)       # stored lower-case
    name: Mapped[str] = mapped_column(String(200))
    created_at = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at = mapped_column(DateTime(timezone=True), nullable=False)


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


class OutboxEvent(OutboxMixin, Base):
    pass
